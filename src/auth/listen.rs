//! Hears the key changes other gateways make on a shared PostgreSQL database (`LISTEN`), and
//! forgets those keys from this process's memory as they commit, so a revocation or a new tier
//! applies everywhere at once instead of after the memory's freshness.
//!
//! A notification sent while this process was not listening is lost, so whenever the channel
//! is (re)established every remembered key is read again on its next use.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio_util::sync::CancellationToken;

use super::backend::Propagation;
use super::cache::KeyCache;

/// The channel key changes are announced on; the payload is the key's id.
pub const CHANNEL: &str = "seadragon_keys";

/// First and longest wait between attempts to listen again.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Starts listening before returning, so that a store handed out is already hearing changes,
/// then keeps listening (reconnecting with backoff) until the returned token is cancelled.
pub async fn start(
    pool: PgPool,
    cache: Arc<KeyCache>,
    state: Arc<Mutex<Propagation>>,
) -> Result<CancellationToken, sqlx::Error> {
    let listener = subscribe(&pool).await?;
    let stop = CancellationToken::new();
    let task = Listening { pool, cache, state };
    tokio::spawn(task.run(listener, stop.clone()));
    Ok(stop)
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

struct Listening {
    pool: PgPool,
    cache: Arc<KeyCache>,
    state: Arc<Mutex<Propagation>>,
}

impl Listening {
    async fn run(self, first: PgListener, stop: CancellationToken) {
        let mut listener = Some(first);
        let mut retry = RETRY_FIRST;
        loop {
            let reason = match listener.take() {
                Some(listener) => {
                    retry = RETRY_FIRST;
                    self.set(Propagation::Listening);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        reason = self.hear(listener) => reason,
                    }
                }
                None => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                    match subscribe(&self.pool).await {
                        Ok(again) => {
                            // Changes made while nobody listened went unheard.
                            self.cache.invalidate();
                            tracing::info!("listening for key changes again");
                            listener = Some(again);
                            continue;
                        }
                        Err(e) => e.to_string(),
                    }
                }
            };
            if !matches!(self.get(), Propagation::Lost(_)) {
                tracing::warn!(
                    "not hearing key changes from other gateways ({reason}); reconnecting"
                );
            }
            self.cache.invalidate();
            self.set(Propagation::Lost(reason));
        }
    }

    /// Forgets each key announced until the connection fails; returns why it did.
    async fn hear(&self, mut listener: PgListener) -> String {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => self.cache.forget(notification.payload()),
                Ok(None) => return "the connection was lost".to_owned(),
                Err(e) => return e.to_string(),
            }
        }
    }

    fn get(&self) -> Propagation {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, state: Propagation) {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }
}

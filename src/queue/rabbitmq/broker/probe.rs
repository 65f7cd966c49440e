//! Liveness: whether the owner of a queue still consumes it, and reconnect backoff.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::Channel;

/// Waits `attempt`-dependent backoff before a reconnect: 0.2 s doubling to 5 s.
pub async fn backoff(attempt: u32) {
    let millis = 200u64.saturating_mul(1 << attempt.min(5)).min(5_000);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// How often gateways and workers check that the other end of their running jobs lives.
pub const LIVENESS_EVERY: Duration = Duration::from_secs(2);

/// Checks which of `queues` are gone, i.e. whose owner's connection ended: they are exclusive
/// (see [`super::declare_owned`]), so the broker deletes each with its connection. Each gets a
/// `{"kind":"ping"}` published `mandatory` on `channel` (a confirm channel): a ping that
/// comes back unroutable means the queue is gone; the owner ignores the others. (A passive
/// declare of another connection's exclusive queue fails with `RESOURCE_LOCKED` and closes
/// the channel, which the client library logs as an error every time.) A ping that is not
/// confirmed in time (a resource alarm) says nothing: the owner counts as alive.
async fn queues_gone(channel: &Channel, queues: Vec<String>) -> Vec<String> {
    let mut gone = Vec::new();
    for queue in queues {
        let properties = super::json_properties("ping").with_expiration("5000".into());
        let pinged = super::publish(channel, &queue, PING, properties, true).await;
        if matches!(pinged, Ok(super::Published::Returned)) {
            gone.push(queue);
        }
    }
    gone
}

/// Runs [`queues_gone`] probes one at a time, each in a task of its own: a probe waits for
/// confirms, and whatever a session loop handles must not wait behind it. A probe asked for
/// while the last one still runs is skipped (the next tick asks again).
#[derive(Debug, Default)]
pub struct Prober {
    busy: Arc<AtomicBool>,
}

impl Prober {
    /// Probes `queues` on `channel` and hands the gone ones to `on_gone`.
    pub fn probe<F, Fut>(&self, channel: &Channel, queues: Vec<String>, on_gone: F)
    where
        F: FnOnce(Vec<String>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        if queues.is_empty() || self.busy.swap(true, Ordering::Relaxed) {
            return;
        }
        let (channel, busy) = (channel.clone(), Arc::clone(&self.busy));
        tokio::spawn(async move {
            on_gone(queues_gone(&channel, queues).await).await;
            busy.store(false, Ordering::Relaxed);
        });
    }
}

/// What a liveness probe sends; replies and orders both read it as `ping`.
const PING: &[u8] = br#"{"kind":"ping"}"#;

/// The AMQP reply code of a queue that does not exist.
pub const NOT_FOUND: u16 = 404;

/// The AMQP reply code of a broker error, if it is one.
pub fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

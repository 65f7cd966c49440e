//! How a process notices other processes' writes to a shared SQLite file without reading
//! every key again: SQLite's `PRAGMA data_version`, asked on one connection, changes when any
//! other connection has committed since that connection last asked. A task asks every
//! [`CHECK_EVERY`] and tells the key cache how long the file has been quiet
//! ([`KeyCache::unchanged`]), so a key read during a quiet spell stays fresh with no query on
//! the request path, and a write anywhere still reaches every process within the cache's
//! freshness. This process's own writes count too (they go through the pool's other
//! connections); they only make the cache read keys again.

use std::sync::Weak;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use super::cache::KeyCache;

/// How often the file is asked; well inside the cache's freshness, so a key in use never
/// ages out while nothing is written.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Watches the file `options` opens for as long as `cache` lives.
pub fn spawn(options: SqliteConnectOptions, cache: Weak<KeyCache>) {
    tokio::spawn(async move {
        let mut connection: Option<SqliteConnection> = None;
        // The version last seen, and when the check that first saw it returned.
        let mut quiet: Option<(i64, Instant)> = None;
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let Some(cache) = cache.upgrade() else {
                break;
            };
            let asked = Instant::now();
            match data_version(&mut connection, &options).await {
                Ok(version) => match quiet {
                    Some((seen, since)) if seen == version => cache.unchanged(since, asked),
                    _ => quiet = Some((version, Instant::now())),
                },
                Err(e) => {
                    // Keys then age as if unwatched; the store's outage handling takes over
                    // if the file cannot be read at all.
                    tracing::debug!(error = %e, "cannot ask the key store's data version");
                    connection = None;
                    quiet = None;
                }
            }
        }
        if let Some(connection) = connection {
            let _ = connection.close().await;
        }
    });
}

/// The file's data version, on the watcher's own connection (opened when missing).
async fn data_version(
    connection: &mut Option<SqliteConnection>,
    options: &SqliteConnectOptions,
) -> Result<i64, sqlx::Error> {
    let conn = match connection {
        Some(conn) => conn,
        None => connection.insert(options.connect().await?),
    };
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
}

//! Liveness: whether the owner of a queue still consumes it, and reconnect backoff.

use std::time::Duration;

use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

/// Waits `attempt`-dependent backoff before a reconnect: 0.2 s doubling to 5 s.
pub async fn backoff(attempt: u32) {
    let millis = 200u64.saturating_mul(1 << attempt.min(5)).min(5_000);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// How often gateways and workers check that the other end of their running jobs lives.
pub const LIVENESS_EVERY: Duration = Duration::from_secs(2);

/// Checks which of `queues` still have a consumer, i.e. whose owner is alive. Uses (and
/// replaces when the broker closes it) a dedicated channel, since a passive declare of a
/// queue that no longer exists closes the channel.
pub async fn queues_without_consumers(
    connection: &lapin::Connection,
    probe: &mut Option<Channel>,
    queues: Vec<String>,
) -> Result<Vec<String>, lapin::Error> {
    let mut dead = Vec::new();
    for queue in queues {
        let channel = match probe.take() {
            Some(channel) if channel.status().connected() => channel,
            _ => connection.create_channel().await?,
        };
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(q) if q.consumer_count() > 0 => *probe = Some(channel),
            Ok(_) => {
                *probe = Some(channel);
                dead.push(queue);
            }
            // NOT_FOUND closes the channel; the next probe opens another.
            Err(_) => dead.push(queue),
        }
    }
    Ok(dead)
}

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

/// Checks which of `queues` are gone, i.e. whose owner's connection ended: they are exclusive
/// (see [`super::declare_owned`]), so the broker deletes each with its connection. A passive
/// declare of another connection's exclusive queue answers `RESOURCE_LOCKED`: it exists. Uses
/// (and replaces when the broker closes it) a dedicated channel, since both answers close the
/// channel.
pub async fn queues_gone(
    connection: &lapin::Connection,
    probe: &mut Option<Channel>,
    queues: Vec<String>,
) -> Result<Vec<String>, lapin::Error> {
    let mut gone = Vec::new();
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
            // Not exclusive (an owner from before exclusive queues): alive while consumed.
            Ok(q) => {
                *probe = Some(channel);
                if q.consumer_count() == 0 {
                    gone.push(queue);
                }
            }
            Err(e) if reply_code(&e) == Some(NOT_FOUND) => gone.push(queue),
            Err(e) if reply_code(&e) == Some(RESOURCE_LOCKED) => {}
            // The connection itself failed: the session ends and reconnects.
            Err(e) => return Err(e),
        }
    }
    Ok(gone)
}

/// AMQP reply codes the probes tell apart.
pub const NOT_FOUND: u16 = 404;
const RESOURCE_LOCKED: u16 = 405;

/// The AMQP reply code of a broker error, if it is one.
pub fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

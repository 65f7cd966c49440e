//! Pulling jobs: one message at a time from a job queue (`basic.get`, acknowledged when the
//! job ends), and how many a queue holds, for workers deciding where to pull next.

use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

/// Takes the next job of `queue`, unacknowledged, with how many messages remain behind it.
pub async fn pull(channel: &Channel, queue: &str) -> Result<Option<(Delivery, u32)>, lapin::Error> {
    let got = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?;
    Ok(got.map(|m| (m.delivery, m.message_count)))
}

/// How many messages `queue` holds ready for delivery: a passive declare, which the queue's
/// leader answers without writing to its log (an empty `basic.get` on a quorum queue is a
/// replicated command).
pub async fn ready(channel: &Channel, queue: &str) -> Result<u32, lapin::Error> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    Ok(declared.message_count())
}

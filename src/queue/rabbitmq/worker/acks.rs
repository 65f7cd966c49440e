//! Acknowledging and requeueing a job delivery, each bounded in time.

use std::time::Duration;

use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};

/// How long acknowledging a job may take; on a connection that just died it may never finish.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Acknowledges a job. Fails only if its channel died, in which case the broker requeued the
/// job already; bounded, so a slot is never held by a dead connection.
pub(super) async fn ack(delivery: &AmqpDelivery) {
    let acked = delivery.acker.ack(BasicAckOptions::default());
    if !matches!(tokio::time::timeout(ACK_TIMEOUT, acked).await, Ok(Ok(_))) {
        tracing::debug!("a job could not be acknowledged; its channel is gone");
    }
}

/// How long a worker waits for its claim to be answered before putting the job back.
pub(super) const CLAIM_TIMEOUT: Duration = Duration::from_secs(3);

/// Puts a job back in its queue for another worker (or this one) to claim again. Fails only
/// if its channel died, in which case the broker requeued the job already.
pub(super) async fn requeue(delivery: &AmqpDelivery) {
    let options = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    let nacked = delivery.acker.nack(options);
    if !matches!(tokio::time::timeout(ACK_TIMEOUT, nacked).await, Ok(Ok(_))) {
        tracing::debug!("a job could not be requeued; its channel is gone");
    }
}

//! One policy for clients that stop reading, used by every backend: a job's events wait in a
//! buffer of [`MAX_EVENTS_BEHIND`]; when it is full, the sender waits for room at most the
//! configured patience (`SEADRAGON_SLOW_CLIENT_SECS`), then the client is dropped and its job
//! cancelled. A stalled client therefore never holds a worker's slot for longer than that.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::{JobEvent, QueueError};

/// Events a client may fall behind before the sender waits for it.
pub const MAX_EVENTS_BEHIND: usize = 1024;

/// A job's event buffer.
pub fn channel() -> (mpsc::Sender<JobEvent>, mpsc::Receiver<JobEvent>) {
    mpsc::channel(MAX_EVENTS_BEHIND)
}

/// Hands `event` to the client; `Err(ClientGone)` when it left, or when its buffer stayed full
/// for `patience`.
pub async fn deliver(
    events: &mpsc::Sender<JobEvent>,
    event: JobEvent,
    patience: Duration,
) -> Result<(), QueueError> {
    // The common case costs no timer.
    let event = match events.try_send(event) {
        Ok(()) => return Ok(()),
        Err(TrySendError::Closed(_)) => return Err(QueueError::ClientGone),
        Err(TrySendError::Full(event)) => event,
    };
    match tokio::time::timeout(patience, events.send(event)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(QueueError::ClientGone),
        Err(_) => {
            tracing::info!(
                patience_secs = patience.as_secs_f64(),
                "a client stopped reading its stream; dropping it and cancelling its job"
            );
            Err(QueueError::ClientGone)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::JobFailure;

    fn event() -> JobEvent {
        JobEvent::Failed(JobFailure::new(500, "x"))
    }

    #[tokio::test]
    async fn a_reader_that_keeps_up_never_waits() {
        let (tx, mut rx) = channel();
        for _ in 0..3 * MAX_EVENTS_BEHIND {
            deliver(&tx, event(), Duration::ZERO).await.unwrap();
            rx.recv().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_full_buffer_that_stays_full_drops_the_client_after_the_patience() {
        let (tx, _rx) = channel();
        for _ in 0..MAX_EVENTS_BEHIND {
            deliver(&tx, event(), Duration::ZERO).await.unwrap();
        }
        let started = tokio::time::Instant::now();
        let r = deliver(&tx, event(), Duration::from_millis(200)).await;
        assert_eq!(r, Err(QueueError::ClientGone));
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_client_that_catches_up_in_time_keeps_its_stream() {
        let (tx, mut rx) = channel();
        for _ in 0..MAX_EVENTS_BEHIND {
            deliver(&tx, event(), Duration::ZERO).await.unwrap();
        }
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let first = rx.recv().await;
            // Still reading: the receiver stays open until the late event is in.
            (first, rx)
        });
        deliver(&tx, event(), Duration::from_secs(30))
            .await
            .unwrap();
        let (first, rx) = reader.await.unwrap();
        assert!(first.is_some());
        assert_eq!(rx.len(), MAX_EVENTS_BEHIND);
    }
}

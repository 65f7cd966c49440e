//! A running job's events on their way to its gateway. While one message waits for the
//! broker's confirm, the next events gather, so a fast stream travels in few confirmed
//! messages (in order, one channel) and a slow one still sends each event at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::queue::{JobEvent, QueueError};

/// Most events one message carries.
const MAX_BATCH: usize = 256;

/// How long [`EventOutbox::flush`] waits for the last messages before giving up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The events of one job, published in batches by a task of their own.
#[derive(Debug)]
pub struct EventOutbox {
    events: Option<mpsc::UnboundedSender<JobEvent>>,
    gone: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

impl EventOutbox {
    /// Starts publishing with `send`, which returns false when the gateway is gone; then
    /// `stop` is cancelled and later events are refused.
    pub fn start<F, Fut>(send: F, stop: CancellationToken) -> Self
    where
        F: Fn(Vec<JobEvent>) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gone = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&gone);
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(_) => break,
                    }
                }
                if !send(batch).await {
                    flag.store(true, Ordering::Relaxed);
                    stop.cancel();
                    return;
                }
            }
        });
        Self {
            events: Some(tx),
            gone,
            task: Some(task),
        }
    }

    /// Queues an event; `ClientGone` once the gateway stopped taking them.
    pub fn push(&self, event: JobEvent) -> Result<(), QueueError> {
        if self.gone.load(Ordering::Relaxed) {
            return Err(QueueError::ClientGone);
        }
        self.events
            .as_ref()
            .and_then(|tx| tx.send(event).ok())
            .ok_or(QueueError::ClientGone)
    }

    /// Sends what is still queued and waits for its confirms (bounded).
    pub async fn flush(&mut self) {
        self.events = None;
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, task).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn events_arrive_in_order_in_fewer_messages_and_a_gone_gateway_stops_the_job() {
        let seen: Arc<Mutex<Vec<Vec<JobEvent>>>> = Arc::default();
        let log = Arc::clone(&seen);
        let stop = CancellationToken::new();
        let mut outbox = EventOutbox::start(
            move |batch: Vec<JobEvent>| {
                let log = Arc::clone(&log);
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let mut log = log.lock().unwrap();
                    log.push(batch);
                    log.len() < 3
                }
            },
            stop.clone(),
        );
        let event = |i: u64| JobEvent::Finished {
            finish_reason: i.to_string(),
            usage: crate::openai::Usage::default(),
        };
        for i in 0..50 {
            outbox.push(event(i)).unwrap();
        }
        outbox.flush().await;
        let batches = seen.lock().unwrap().clone();
        let flat: Vec<JobEvent> = batches.iter().flatten().cloned().collect();
        assert!(batches.len() <= 3, "{} messages", batches.len());
        assert_eq!(flat, (0..flat.len() as u64).map(event).collect::<Vec<_>>());
        assert!(stop.is_cancelled() || flat.len() == 50);
    }
}

//! One turn of the scheduler: a future that is ready once every task that was ready when it
//! was first polled has had its turn (tokio's deferred wake-up, as `yield_now` uses).
//!
//! `yield_now` itself is ready the second time it is polled, however soon: inside a response
//! body, hyper polls the body again within the same poll of the connection, so the yield
//! would let nothing run. This future stays pending until tokio itself delivers the wake-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// Waits one turn of the scheduler; see the module's comment.
pub fn next_turn() -> Turn {
    Turn { deferred: None }
}

/// The future of [`next_turn`].
pub struct Turn {
    deferred: Option<Arc<Deferred>>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Turn")
    }
}

/// The waker tokio keeps in its deferred list: it marks the turn as over, then wakes the task.
struct Deferred {
    over: AtomicBool,
    task: Waker,
}

impl Wake for Deferred {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.over.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

impl Future for Turn {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(deferred) = &self.deferred {
            return if deferred.over.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        let deferred = Arc::new(Deferred {
            over: AtomicBool::new(false),
            task: cx.waker().clone(),
        });
        let waker = Waker::from(Arc::clone(&deferred));
        // The first poll of `yield_now` hands `waker` to tokio's deferred list and is pending.
        let mut yielded = std::pin::pin!(tokio::task::yield_now());
        if yielded
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            return Poll::Ready(());
        }
        self.deferred = Some(deferred);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_lets_a_ready_task_run_first() {
        let ran = Arc::new(AtomicBool::new(false));
        let other = Arc::clone(&ran);
        let task = tokio::spawn(async move { other.store(true, Ordering::SeqCst) });
        next_turn().await;
        assert!(ran.load(Ordering::SeqCst));
        task.await.unwrap();
    }
}

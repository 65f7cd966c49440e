//! The worker's broker session: its control and bell queues, the channel slots pull jobs
//! on, periodic counts of the job queues, liveness probes of the gateways whose jobs it runs,
//! and reconnection with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;

use super::{Inner, PullChannel, RECHECK_EVERY, locked};
use crate::queue::rabbitmq::broker;
use crate::queue::rabbitmq::link::{self, Link, LinkEvents};
use crate::queue::rabbitmq::wire::{Bell, Control};
use crate::queue::schedule::RESCUE_LEVEL;

/// Keeps a session with the broker up, reconnecting with backoff.
pub(super) async fn supervise(inner: Arc<Inner>) {
    let mut attempt = 0;
    loop {
        let result = session(&inner, &mut attempt).await;
        inner.channel.send_replace(None);
        inner.pull.send_replace(None);
        // Deliveries of a dead session cannot be acknowledged; the broker requeues them, so
        // the jobs running on them must stop.
        for (_, (token, _)) in locked(&inner.running).drain() {
            token.cancel();
        }
        locked(&inner.claims).clear();
        match result {
            Ok(()) => return,
            Err(e) => {
                // A client library's error may quote the URL, password and all.
                let e = inner.config.redact(&e);
                link::disconnected(&inner.status, &e);
                if inner.shutdown.is_cancelled() {
                    return;
                }
                tracing::warn!(error = %e, "broker session ended; reconnecting");
                broker::backoff(attempt).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

async fn session(inner: &Arc<Inner>, attempt: &mut u32) -> Result<(), String> {
    let e = |e: lapin::Error| e.to_string();
    let (link, mut events) = Link::open(&inner.config, &inner.names, ("worker", *attempt))
        .await
        .map_err(e)?;
    // Closed whatever ends the session, so the broker requeues its unacknowledged jobs now
    // rather than when a dead connection times out.
    let result = serve(inner, &link, &mut events, attempt).await;
    link.close().await;
    result
}

async fn serve(
    inner: &Arc<Inner>,
    link: &Link,
    events: &mut LinkEvents,
    attempt: &mut u32,
) -> Result<(), String> {
    let e = |e: lapin::Error| e.to_string();
    let (channel, consume) = (link.channel.clone(), &link.consume);
    let (names, instance) = (&inner.names, &inner.config.instance);
    let number = inner.sessions.fetch_add(1, Ordering::Relaxed);
    let control = names.owned("control", instance, number);
    let mut orders = broker::consume_owned(consume, &control).await.map_err(e)?;
    *locked(&inner.control_queue) = control.clone();
    let mut bells = broker::subscribe(
        consume,
        &names.owned("bell", instance, number),
        &names.bell(),
    )
    .await
    .map_err(e)?;
    // Each model's queues are pulled once its Ollama has the model.
    let mut models = inner.models.subscribe();
    let pull = consume.create_channel().await.map_err(e)?;
    let known = models.borrow_and_update().clone();
    serve_models(inner, &pull, &known).await.map_err(e)?;
    let mut pull_failed = inner.pull_failed.subscribe();
    pull_failed.mark_unchanged();
    inner.pull.send_replace(Some(PullChannel {
        session: number,
        channel: pull.clone(),
    }));
    inner.channel.send_replace(Some(channel));
    link::connected(&inner.status);
    *attempt = 0;
    tracing::info!(queue = %control, slots = inner.slots, "worker connected to the broker");
    let mut liveness = tokio::time::interval(broker::LIVENESS_EVERY);
    let mut count = tokio::time::interval(RECHECK_EVERY);
    let (prober, mut counter) = (broker::Prober::default(), None);
    loop {
        tokio::select! {
            _ = liveness.tick() => {
                let inner = Arc::clone(inner);
                prober.probe(&link.channel, inner.running_reply_queues(), |gone| async move {
                    inner.gateways_gone(&gone);
                });
            }
            _ = count.tick() => count_jobs(inner, consume, &mut counter).await.map_err(e)?,
            bell = bells.next() => {
                let bell = bell.ok_or("the broker cancelled the bell consumer")?.map_err(e)?;
                if let Ok(Bell { model, level }) = serde_json::from_slice::<Bell>(&bell.data) {
                    locked(&inner.backlog).rang(&model, level);
                    inner.bell.notify_one();
                }
            }
            changed = models.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now = models.borrow_and_update().clone();
                serve_models(inner, &pull, &now).await.map_err(e)?;
            }
            // Unacknowledged jobs of a closed channel went back to their queues: the jobs
            // running on them must stop, which ending the session does.
            Ok(()) = pull_failed.changed() => {
                if *pull_failed.borrow_and_update() == number {
                    return Err("pulling a job failed".to_owned());
                }
            }
            order = orders.next() => {
                let order = order.ok_or("the broker cancelled the control consumer")?.map_err(e)?;
                apply(inner, &order.data);
            }
            event = events.event(&inner.status) => event?,
            () = inner.shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Declares the job queues of `models` and makes them the ones slots pull from; each queue of
/// a new model gets one try.
async fn serve_models(
    inner: &Inner,
    channel: &lapin::Channel,
    models: &[String],
) -> Result<(), lapin::Error> {
    for model in models {
        for level in 0..=RESCUE_LEVEL {
            broker::declare_jobs(channel, &inner.names.jobs(model, level)).await?;
        }
    }
    let mut backlog = locked(&inner.backlog);
    backlog.set_models(models);
    backlog.unknown();
    drop(backlog);
    inner.bell.notify_one();
    Ok(())
}

/// Counts every job queue the worker serves, repairing its beliefs where a bell was lost or
/// another worker took the job; wakes the slots if work is waiting. A queue that vanished
/// (unused past its expiry) is declared again.
async fn count_jobs(
    inner: &Inner,
    connection: &lapin::Connection,
    counter: &mut Option<lapin::Channel>,
) -> Result<(), lapin::Error> {
    let queues = locked(&inner.backlog).queues();
    for (model, level) in queues {
        let channel = match counter.take() {
            Some(channel) if channel.status().connected() => channel,
            _ => connection.create_channel().await?,
        };
        let queue = inner.names.jobs(&model, level);
        match broker::ready(&channel, &queue).await {
            Ok(ready) => {
                locked(&inner.backlog).observed(&model, level, ready);
                *counter = Some(channel);
            }
            Err(err) if broker::reply_code(&err) == Some(broker::NOT_FOUND) => {
                let channel = connection.create_channel().await?;
                broker::declare_jobs(&channel, &queue).await?;
                *counter = Some(channel);
            }
            Err(err) => return Err(err),
        }
    }
    if locked(&inner.backlog).any() {
        inner.bell.notify_one();
    }
    Ok(())
}

/// Applies a gateway's order.
fn apply(inner: &Inner, data: &[u8]) {
    match serde_json::from_slice::<Control>(data) {
        Ok(Control::Grant {
            job_id,
            copy,
            lease,
        }) => {
            if let Some(waiting) = locked(&inner.claims).remove(&(job_id, copy)) {
                let _ = waiting.send(Some(lease));
            }
        }
        Ok(Control::Deny { job_id, copy }) => {
            if let Some(waiting) = locked(&inner.claims).remove(&(job_id, copy)) {
                let _ = waiting.send(None);
            }
        }
        Ok(Control::Ping) => {}
        Ok(Control::Cancel { job_id }) => {
            if let Some((token, _)) = locked(&inner.running).get(&job_id) {
                token.cancel();
            }
        }
        Err(err) => tracing::warn!(error = %err, "unreadable order on the control queue"),
    }
}

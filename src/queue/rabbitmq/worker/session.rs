//! The worker's broker session: consumers of the job and control queues, liveness probes of
//! the gateways whose jobs it runs, and reconnection with backoff.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::SelectAll;

use super::{Inner, locked};
use crate::queue::rabbitmq::broker;
use crate::queue::rabbitmq::link::{self, Link};
use crate::queue::rabbitmq::wire::Control;

/// Keeps a session with the broker up, reconnecting with backoff.
pub(super) async fn supervise(inner: Arc<Inner>) {
    let mut attempt = 0;
    loop {
        let result = session(&inner, &mut attempt).await;
        inner.channel.send_replace(None);
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
    let (link, mut events) = Link::open(
        &inner.config,
        &inner.names,
        ("worker", *attempt),
        &inner.control_queue,
    )
    .await
    .map_err(e)?;
    let (channel, consume) = (link.channel.clone(), &link.consume);
    // Prefetch = slots across every model's queue: more would let the broker hand out jobs
    // before a slot is free. Each model's queue is consumed once its Ollama has the model.
    let jobs_channel = broker::jobs_channel(consume, inner.slots)
        .await
        .map_err(e)?;
    let mut models = inner.models.subscribe();
    let mut consumed: HashSet<String> = HashSet::new();
    let mut jobs = SelectAll::new();
    let known = models.borrow_and_update().clone();
    consume_models(inner, &jobs_channel, &known, &mut consumed, &mut jobs)
        .await
        .map_err(e)?;
    let mut orders = broker::consume_queue(consume, &inner.control_queue, None)
        .await
        .map_err(e)?;
    inner.channel.send_replace(Some(channel));
    link::connected(&inner.status);
    *attempt = 0;
    tracing::info!(queue = %inner.control_queue, slots = inner.slots, "worker connected to the broker");
    let mut liveness = tokio::time::interval(broker::LIVENESS_EVERY);
    let mut probe = None;
    loop {
        tokio::select! {
            _ = liveness.tick() => {
                let replies = inner.running_reply_queues();
                if !replies.is_empty() {
                    let dead = broker::queues_without_consumers(consume, &mut probe, replies).await.map_err(e)?;
                    inner.gateways_gone(&dead);
                }
            }
            delivery = jobs.next(), if !jobs.is_empty() => {
                let delivery = delivery.ok_or("the broker cancelled a job consumer")?.map_err(e)?;
                if inner.incoming_tx.send(delivery).await.is_err() {
                    return Ok(());
                }
            }
            changed = models.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now = models.borrow_and_update().clone();
                consume_models(inner, &jobs_channel, &now, &mut consumed, &mut jobs)
                    .await
                    .map_err(e)?;
            }
            order = orders.next() => {
                let order = order.ok_or("the broker cancelled the control consumer")?.map_err(e)?;
                apply(inner, &order.data);
            }
            event = events.event(&inner.status) => event?,
            () = inner.shutdown.cancelled() => {
                link.close().await;
                return Ok(());
            }
        }
    }
}

/// Starts consuming the job queue of each model in `models` not consumed yet.
async fn consume_models(
    inner: &Inner,
    channel: &lapin::Channel,
    models: &[String],
    consumed: &mut HashSet<String>,
    jobs: &mut SelectAll<lapin::Consumer>,
) -> Result<(), lapin::Error> {
    for model in models {
        if consumed.insert(model.clone()) {
            let queue = inner.names.jobs(model);
            jobs.push(broker::consume_jobs(channel, &queue).await?);
            tracing::info!(%model, "taking jobs for this model");
        }
    }
    Ok(())
}

/// Applies a gateway's order.
fn apply(inner: &Inner, data: &[u8]) {
    match serde_json::from_slice::<Control>(data) {
        Ok(Control::Grant { job_id, copy }) => {
            if let Some(waiting) = locked(&inner.claims).remove(&(job_id, copy)) {
                let _ = waiting.send(true);
            }
        }
        Ok(Control::Deny { job_id, copy }) => {
            if let Some(waiting) = locked(&inner.claims).remove(&(job_id, copy)) {
                let _ = waiting.send(false);
            }
        }
        Ok(Control::Cancel { job_id }) => {
            if let Some((token, _)) = locked(&inner.running).get(&job_id) {
                token.cancel();
            }
        }
        Err(err) => tracing::warn!(error = %err, "unreadable order on the control queue"),
    }
}

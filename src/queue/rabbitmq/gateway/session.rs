//! The gateway's broker session: the reply, announcement and peer consumers, liveness probes
//! of the workers running our jobs, and reconnection with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::StreamExt;
use lapin::Channel;
use tokio::sync::mpsc;

use super::peers::{self, GatewayState, PeerMessage};
use super::{Inner, Outgoing};
use crate::queue::JobEvent;
use crate::queue::rabbitmq::link::{self, Link, LinkEvents};
use crate::queue::rabbitmq::wire::{Announcement, Control, Reply};
use crate::queue::rabbitmq::{broker, locked};

/// Keeps a session with the broker up, reconnecting with backoff.
pub(super) async fn supervise(inner: Arc<Inner>, mut outbox: mpsc::UnboundedReceiver<Outgoing>) {
    let mut attempt = 0;
    loop {
        match session(&inner, &mut outbox, &mut attempt).await {
            Ok(()) => return,
            Err(e) => {
                // A client library's error may quote the URL, password and all.
                let e = inner.config.redact(&e);
                inner.channel.send_replace(None);
                *locked(&inner.publisher) = None;
                inner.session_lost();
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

async fn session(
    inner: &Arc<Inner>,
    outbox: &mut mpsc::UnboundedReceiver<Outgoing>,
    attempt: &mut u32,
) -> Result<(), String> {
    let (link, mut events) = Link::open(&inner.config, &inner.names, ("gateway", *attempt))
        .await
        .map_err(|e| e.to_string())?;
    let result = serve(inner, &link, &mut events, outbox, attempt).await;
    // Closed whatever ended the session, so its own queues go at once.
    link.close().await;
    result
}

async fn serve(
    inner: &Arc<Inner>,
    link: &Link,
    events: &mut LinkEvents,
    outbox: &mut mpsc::UnboundedReceiver<Outgoing>,
    attempt: &mut u32,
) -> Result<(), String> {
    let e = |e: lapin::Error| e.to_string();
    let (instance, names) = (&inner.config.instance, &inner.names);
    let (channel, consume) = (link.channel.clone(), &link.consume);
    let number = inner.sessions.fetch_add(1, Ordering::Relaxed);
    let reply_queue = names.owned("reply", instance, number);
    // Without acknowledgements: an ack per claim and per event batch cost the broker and the
    // gateway about as much as the messages themselves. What this gives up is redelivery after
    // a lost session, and `Inner::session_lost` ends the jobs whose events may be gone.
    let mut consumer = broker::consume_owned(consume, &reply_queue)
        .await
        .map_err(e)?;
    let announce = names.owned("announce", instance, number);
    let mut announcements = broker::subscribe(consume, &announce, &names.workers())
        .await
        .map_err(e)?;
    let peers = names.owned("peers", instance, number);
    let mut peer_messages = broker::subscribe(consume, &peers, &names.gateways())
        .await
        .map_err(e)?;
    *locked(&inner.reply_queue) = reply_queue.clone();
    // A new session may be on a broker that lost its queues: declare each again before use.
    locked(&inner.declared).clear();
    // Jobs go out on a channel of their own, which a run of refusals can replace without
    // touching the one orders and announcements use.
    let jobs = broker::confirm_channel(&link.publish).await.map_err(e)?;
    *locked(&inner.publisher) = Some(Arc::clone(&link.publish));
    inner.channel.send_replace(Some(jobs));
    // Orders to workers go out from a task of their own, in the order they were decided, so
    // the reply consumer never waits on the broker: a slow or blocked publish used to hold
    // back every claim behind it. The task ends with the session (its sender dropped).
    let (orders, pending) = mpsc::unbounded_channel();
    tokio::spawn(send_orders(channel.clone(), pending));
    link::connected(&inner.status);
    *attempt = 0;
    tracing::info!(queue = %reply_queue, "connected to the broker");
    // Jobs still queued name the last session's reply queue, which is gone: each gets a new
    // copy naming this one (the old copies' claims come back unroutable, and their workers
    // drop them).
    let queued = inner.queued_ids();
    if !queued.is_empty() {
        tracing::info!(
            jobs = queued.len(),
            "queueing this gateway's jobs again for the new session"
        );
        let inner = Arc::clone(inner);
        tokio::spawn(async move { inner.queue_again(queued).await });
    }
    let mut liveness = tokio::time::interval(broker::LIVENESS_EVERY);
    let mut share = tokio::time::interval(peers::SHARE_EVERY);
    let prober = broker::Prober::default();
    loop {
        tokio::select! {
            _ = share.tick() => {
                let state = PeerMessage::State(inner.shared_state());
                tokio::spawn(tell_peers(Arc::clone(inner), channel.clone(), state));
            }
            message = peer_messages.next() => {
                let message = message.ok_or("the broker cancelled the peer consumer")?.map_err(e)?;
                match serde_json::from_slice::<PeerMessage>(&message.data) {
                    Ok(PeerMessage::State(state)) if &state.gateway != instance => {
                        let (dispatched, rescued) = inner.peers.record(state);
                        inner.ledger().observed(Instant::now(), dispatched, rescued);
                    }
                    Ok(PeerMessage::Clear { gateway, tier }) if &gateway != instance => {
                        let cleared = inner.clear_local(tier.as_deref());
                        tracing::info!(%gateway, ?tier, cleared, "queue cleared on a peer's order");
                    }
                    _ => {}
                }
            }
            _ = liveness.tick() => {
                let inner = Arc::clone(inner);
                prober.probe(&channel, inner.granted_controls(), |gone| async move {
                    for control in gone {
                        inner.worker_gone(&control).await;
                    }
                });
            }
            delivery = consumer.next() => {
                let delivery = delivery.ok_or("the broker cancelled the reply consumer")?.map_err(e)?;
                handle_reply(inner, &orders, &delivery.data);
            }
            announcement = announcements.next() => {
                let announcement = announcement.ok_or("the broker cancelled the announcement consumer")?.map_err(e)?;
                if let Ok(a) = serde_json::from_slice::<Announcement>(&announcement.data) {
                    locked(&inner.announcements)
                        .insert(a.worker.clone(), (a, Instant::now()));
                }
            }
            event = events.event(&inner.status) => event?,
            Some(order) = outbox.recv() => match order {
                Outgoing::Cancel { control, job_id } => {
                    let _ = orders.send((control, Control::Cancel { job_id }));
                }
                Outgoing::ClearPeers { tier } => {
                    let clear = PeerMessage::Clear { gateway: instance.clone(), tier };
                    tokio::spawn(tell_peers(Arc::clone(inner), channel.clone(), clear));
                }
            },
            () = inner.shutdown.cancelled() => return Ok(()),
        }
    }
}

impl Inner {
    /// What this gateway tells its peers every second.
    fn shared_state(&self) -> GatewayState {
        let local = self.local_snapshot();
        let (levels, oldest_starving_ms) = {
            let jobs = self.lock();
            (
                super::rescue::local_levels(&jobs),
                self.oldest_starving_ms(&jobs),
            )
        };
        let (dispatched, rescued) = self.ledger().totals();
        GatewayState {
            gateway: self.config.instance.clone(),
            tiers: local.tiers,
            running: local.running,
            jobs: self.board.running(),
            levels: levels.to_vec(),
            dispatched,
            rescued,
            oldest_starving_ms,
        }
    }
}

/// An order for a worker's control queue.
type Order = (String, Control);

fn handle_reply(inner: &Arc<Inner>, orders: &mpsc::UnboundedSender<Order>, data: &[u8]) {
    match serde_json::from_slice::<Reply>(data) {
        Ok(Reply::Claim {
            job_id,
            copy,
            redelivered,
            worker,
            slots,
            control,
        }) => {
            let order = match inner.decide(&job_id, copy, redelivered, &control) {
                Some(lease) => {
                    inner.forward(&job_id, vec![JobEvent::Started { worker, slots }]);
                    Control::Grant {
                        job_id,
                        copy,
                        lease,
                    }
                }
                None => Control::Deny { job_id, copy },
            };
            let _ = orders.send((control, order));
        }
        Ok(Reply::Running {
            job_id,
            lease,
            control,
        }) => inner.running(&job_id, lease, &control),
        Ok(Reply::Ping) => {}
        Ok(Reply::Events {
            job_id,
            lease,
            events,
        }) => {
            // Events of a grant that lapsed are not the client's answer.
            if inner.keep_lease(&job_id, lease) {
                inner.forward(&job_id, events);
            }
        }
        Err(err) => tracing::warn!(error = %err, "unreadable message on the reply queue; dropped"),
    }
}

/// Publishes orders one after the other until the session ends.
async fn send_orders(channel: Channel, mut pending: mpsc::UnboundedReceiver<Order>) {
    while let Some((control, order)) = pending.recv().await {
        send_control(&channel, &control, &order).await;
    }
}

async fn tell_peers(inner: Arc<Inner>, channel: Channel, message: PeerMessage) {
    let Ok(payload) = serde_json::to_vec(&message) else {
        return;
    };
    let properties = broker::json_properties(&inner.config.instance).with_expiration("5000".into());
    if let Err(err) =
        broker::publish_to_exchange(&channel, &inner.names.gateways(), &payload, properties).await
    {
        tracing::debug!(error = %err, "could not share state with the other gateways");
    }
}

/// Sends an order without waiting for the broker's confirm: the reply consumer must not stall
/// on one grant while other jobs' events and claims wait behind it. Orders on one channel
/// still reach the broker in the order they were sent.
async fn send_control(channel: &Channel, control: &str, order: &Control) {
    let Ok(payload) = serde_json::to_vec(order) else {
        return;
    };
    let properties = broker::json_properties(order.job_id());
    match broker::publish_unconfirmed(channel, control, &payload, properties).await {
        Ok(confirm) => {
            let control = control.to_owned();
            tokio::spawn(async move {
                if let Err(err) = confirm.await {
                    tracing::warn!(error = %err, queue = control, "an order to a worker was not confirmed");
                }
            });
        }
        Err(err) => {
            tracing::warn!(error = %err, queue = control, "could not send an order to a worker");
        }
    }
}

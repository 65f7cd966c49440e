//! One process's link to the broker: a publishing and a consuming connection (an alarm that
//! blocks publishers then never stalls consumers and acks), a confirm channel, the shared
//! topology and the process's own queue, and the connection events that matter.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use lapin::{Channel, Connection, Event};

use super::BrokerStatus;
use super::RabbitConfig;
use super::broker::{self, Names};

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// An open link; dropping it closes nothing, [`Link::close`] does.
pub struct Link {
    /// For publishing (confirms on `channel`).
    pub publish: Arc<Connection>,
    /// For consuming.
    pub consume: Connection,
    /// A confirm-mode channel on `publish`.
    pub channel: Channel,
}

/// The connection events of a [`Link`], read apart from it so the link stays shareable.
pub struct LinkEvents {
    publish_events: Events,
    consume_events: Events,
}

impl std::fmt::Debug for LinkEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkEvents")
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

impl Link {
    /// Connects as `role` (`gateway` or `worker`, for the broker's connection names) to the
    /// broker URL of connection attempt `attempt` and declares the shared topology.
    pub async fn open(
        config: &RabbitConfig,
        names: &Names,
        (role, attempt): (&str, u32),
    ) -> Result<(Self, LinkEvents), lapin::Error> {
        let instance = &config.instance;
        let url = config.url_for(attempt);
        let publish = broker::connect(url, &format!("seadragon {role} {instance} publish")).await?;
        let consume = broker::connect(url, &format!("seadragon {role} {instance} consume")).await?;
        let channel = broker::confirm_channel(&publish).await?;
        broker::declare_shared(&channel, names).await?;
        let events = LinkEvents {
            publish_events: Box::pin(publish.events_listener()),
            consume_events: Box::pin(consume.events_listener()),
        };
        Ok((
            Self {
                publish: Arc::new(publish),
                consume,
                channel,
            },
            events,
        ))
    }

    /// Closes both connections; unacknowledged deliveries go back to their queues.
    /// Bounded: closing a connection that already broke may never be answered.
    pub async fn close(&self) {
        let both = async {
            let _ = self.consume.close(200, "shutdown".into()).await;
            let _ = self.publish.close(200, "shutdown".into()).await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), both).await;
    }
}

impl LinkEvents {
    /// Waits for a connection event: alarms update `status`; a broken connection is an error.
    pub async fn event(&mut self, status: &Mutex<BrokerStatus>) -> Result<(), String> {
        let lock = || {
            status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        tokio::select! {
            event = self.publish_events.next() => match event {
                Some(Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%reason, "the broker blocks publishing");
                    lock().blocked = true;
                    Ok(())
                }
                Some(Event::ConnectionUnblocked) => {
                    lock().blocked = false;
                    Ok(())
                }
                Some(Event::Error(err)) => fatal(&err),
                None => Err("the publishing connection closed".to_owned()),
                Some(_) => Ok(()),
            },
            event = self.consume_events.next() => match event {
                Some(Event::Error(err)) => fatal(&err),
                None => Err("the consuming connection closed".to_owned()),
                Some(_) => Ok(()),
            },
        }
    }
}

/// Whether a connection's error event ends the session. A soft error closes only the channel
/// it happened on, and whoever used that channel sees the error there: a liveness probe
/// expects `NOT_FOUND` or `RESOURCE_LOCKED`, a failed pull ends the session on its own.
fn fatal(error: &lapin::Error) -> Result<(), String> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp)
            if matches!(amqp.kind(), lapin::protocol::AMQPErrorKind::Soft(_)) =>
        {
            tracing::debug!(%error, "a channel was closed by the broker");
            Ok(())
        }
        _ => Err(error.to_string()),
    }
}

/// Records a fresh session in `status`.
pub fn connected(status: &Mutex<BrokerStatus>) {
    let mut status = status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    status.connected = true;
    status.blocked = false;
    status.last_error = None;
}

/// Records the end of a session in `status`.
pub fn disconnected(status: &Mutex<BrokerStatus>, error: &str) {
    let mut status = status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    status.connected = false;
    status.last_error = Some(error.to_owned());
}

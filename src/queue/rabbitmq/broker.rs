//! Broker plumbing shared by gateway and worker: queue names, topology, connections, and
//! confirmed publishing that tells a routed message from a returned one.

use std::future::Future;
use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm,
};

use crate::queue::schedule::RESCUE_LEVEL;

/// How long an unused reply, control or announcement queue survives its owner.
const OWNER_QUEUE_EXPIRES_MS: u32 = 30_000;

/// Names of everything Seadragon declares, under one prefix so deployments (and tests)
/// can share a broker without seeing each other.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (`seadragon` in production).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The priority job queue. Its arguments changed (no dead-lettering) since `<p>.jobs`, and
    /// RabbitMQ refuses to redeclare a queue with other arguments, hence a new name.
    pub fn jobs(&self) -> String {
        format!("{}.jobs.v2", self.prefix)
    }

    /// A gateway instance's reply queue.
    pub fn reply(&self, instance: &str) -> String {
        format!("{}.reply.{instance}", self.prefix)
    }

    /// A worker instance's control queue.
    pub fn control(&self, instance: &str) -> String {
        format!("{}.control.{instance}", self.prefix)
    }

    /// The fanout exchange workers announce themselves on.
    pub fn workers(&self) -> String {
        format!("{}.workers", self.prefix)
    }

    /// The fanout exchange gateways share their state on.
    pub fn gateways(&self) -> String {
        format!("{}.gateways", self.prefix)
    }

    /// A gateway instance's queue of its peers' messages.
    pub fn peers(&self, instance: &str) -> String {
        format!("{}.peers.{instance}", self.prefix)
    }

    /// A gateway instance's queue of worker announcements.
    pub fn announcements(&self, instance: &str) -> String {
        format!("{}.announce.{instance}", self.prefix)
    }
}

/// Declares an owned queue bound to a fanout exchange and consumes it without acks (its
/// messages are periodic state: losing one costs nothing).
pub async fn subscribe(
    declare: &Channel,
    consume: &Connection,
    queue: &str,
    exchange: &str,
) -> Result<lapin::Consumer, lapin::Error> {
    declare_owned(declare, queue).await?;
    declare
        .queue_bind(
            queue.into(),
            exchange.into(),
            ShortString::from(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    consume_queue(consume, queue, None).await
}

/// Consumes `queue` on a channel of its own: with manual acks and at most `prefetch`
/// unacknowledged deliveries, or without acks when `prefetch` is `None`.
pub async fn consume_queue(
    connection: &Connection,
    queue: &str,
    prefetch: Option<u16>,
) -> Result<lapin::Consumer, lapin::Error> {
    let channel = connection.create_channel().await?;
    if let Some(prefetch) = prefetch {
        channel
            .basic_qos(prefetch, lapin::options::BasicQosOptions::default())
            .await?;
    }
    channel
        .basic_consume(
            queue.into(),
            ShortString::from(""),
            lapin::options::BasicConsumeOptions {
                no_ack: prefetch.is_none(),
                ..lapin::options::BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Largest AMQP frame asked for unless the URL sets `frame_max`. lapin keeps two buffers of
/// 32 frames per connection, filled from the start: with RabbitMQ's own limit (128 KiB) they
/// are 8 MiB each. Seadragon's messages are small (a job's body, a few events); larger ones
/// simply span several frames.
const FRAME_MAX: u32 = 16 * 1024;

/// Opens a named connection (the name shows in the management UI).
pub async fn connect(url: &str, name: &str) -> Result<Connection, lapin::Error> {
    let properties =
        ConnectionProperties::default().with_connection_name(LongString::from(name.to_owned()));
    match url.parse::<AMQPUri>() {
        Ok(mut uri) => {
            uri.query.frame_max.get_or_insert(FRAME_MAX);
            Connection::connect_uri(uri, properties).await
        }
        // lapin reports an unreadable URL in its own words.
        Err(_) => Connection::connect(url, properties).await,
    }
}

/// A channel in confirm mode, for publishing.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

async fn declare_fanout(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Fanout,
            options,
            FieldTable::default(),
        )
        .await
}

/// Declares the shared topology. Idempotent; every process does it at connect.
pub async fn declare_shared(channel: &Channel, names: &Names) -> Result<(), lapin::Error> {
    // The priority count is fixed at declare time; changing it means deleting the queue. No
    // dead-letter exchange: an expired copy is a job that waited too long (its gateway has
    // failed it already) or the losing copy of a rescue, and keeping its body helps nobody.
    let mut job_args = FieldTable::default();
    job_args.insert(
        "x-max-priority".into(),
        AMQPValue::ShortShortUInt(RESCUE_LEVEL),
    );
    channel
        .queue_declare(
            names.jobs().into(),
            QueueDeclareOptions::durable(),
            job_args,
        )
        .await?;
    declare_fanout(channel, &names.gateways()).await?;
    declare_fanout(channel, &names.workers()).await?;
    Ok(())
}

/// Declares a queue owned by one process instance: durable with a client-chosen name (so a
/// reconnect redeclares it), removed by the broker once unused for a while.
pub async fn declare_owned(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let mut args = FieldTable::default();
    args.insert(
        "x-expires".into(),
        AMQPValue::LongUInt(OWNER_QUEUE_EXPIRES_MS),
    );
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await?;
    Ok(())
}

/// What became of a confirmed publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The broker took it and routed it.
    Routed,
    /// `mandatory` and no queue: the owner of the target queue is gone.
    Returned,
}

/// Why a publish did not go through.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No channel (disconnected) or the channel failed.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message.
    #[error("the broker refused the message")]
    Nacked,
    /// No confirm arrived in time (e.g. the connection is blocked by an alarm).
    #[error("the broker did not confirm in time")]
    Timeout,
}

/// How long a publish may wait for its confirm before it counts as failed.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes to `queue` (default exchange) and waits for the broker's confirm: `Returned` when
/// `mandatory` and no queue of that name exists.
pub async fn publish(
    channel: &Channel,
    queue: &str,
    payload: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<Published, PublishError> {
    let confirmed = async {
        let confirm = send(channel, queue, payload, properties, mandatory).await?;
        verdict(confirm).await
    };
    tokio::time::timeout(CONFIRM_TIMEOUT, confirmed)
        .await
        .map_err(|_| PublishError::Timeout)?
}

/// Publishes to `queue` and returns once the message is sent, with the broker's verdict to
/// await later (or elsewhere).
pub async fn publish_unconfirmed(
    channel: &Channel,
    queue: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<impl Future<Output = Result<Published, PublishError>> + Send + 'static, PublishError> {
    let confirm = tokio::time::timeout(
        CONFIRM_TIMEOUT,
        send(channel, queue, payload, properties, false),
    )
    .await
    .map_err(|_| PublishError::Timeout)??;
    Ok(async move {
        tokio::time::timeout(CONFIRM_TIMEOUT, verdict(confirm))
            .await
            .map_err(|_| PublishError::Timeout)?
    })
}

async fn send(
    channel: &Channel,
    queue: &str,
    payload: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<PublisherConfirm, PublishError> {
    // Transient unless the caller asked for persistence (jobs): events and orders are
    // worthless once their process is gone.
    let properties = if properties.delivery_mode().is_some() {
        properties
    } else {
        properties.with_delivery_mode(1)
    };
    channel
        .basic_publish(
            ShortString::from(""),
            queue.into(),
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            payload,
            properties,
        )
        .await
        .map_err(|e| PublishError::Unavailable(e.to_string()))
}

async fn verdict(confirm: PublisherConfirm) -> Result<Published, PublishError> {
    let confirm = confirm
        .await
        .map_err(|e| PublishError::Unavailable(e.to_string()))?;
    if confirm.is_nack() {
        return Err(PublishError::Nacked);
    }
    Ok(if confirm.take_message().is_some() {
        Published::Returned
    } else {
        Published::Routed
    })
}

/// Publishes to a fanout exchange without waiting for consumers (announcements).
pub async fn publish_to_exchange(
    channel: &Channel,
    exchange: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let send = async {
        channel
            .basic_publish(
                exchange.into(),
                ShortString::from(""),
                BasicPublishOptions::default(),
                payload,
                properties.with_delivery_mode(1),
            )
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))?
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))
    };
    tokio::time::timeout(CONFIRM_TIMEOUT, send)
        .await
        .map_err(|_| PublishError::Timeout)?
        .map(|_| ())
}

/// JSON message properties with a correlation id.
pub fn json_properties(correlation_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id(correlation_id.into())
}

/// Waits `attempt`-dependent backoff before a reconnect: 0.2 s doubling to 5 s.
pub async fn backoff(attempt: u32) {
    let millis = 200u64.saturating_mul(1 << attempt.min(5)).min(5_000);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// How often gateways and workers check that the other end of their running jobs lives.
pub const LIVENESS_EVERY: Duration = Duration::from_secs(2);

/// Checks which of `queues` still have a consumer, i.e. whose owner is alive. Uses (and
/// replaces when the broker closes it) a dedicated channel, since a passive declare of a
/// queue that no longer exists closes the channel.
pub async fn queues_without_consumers(
    connection: &lapin::Connection,
    probe: &mut Option<Channel>,
    queues: Vec<String>,
) -> Result<Vec<String>, lapin::Error> {
    let mut dead = Vec::new();
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
            Ok(q) if q.consumer_count() > 0 => *probe = Some(channel),
            Ok(_) => {
                *probe = Some(channel);
                dead.push(queue);
            }
            // NOT_FOUND closes the channel; the next probe opens another.
            Err(_) => dead.push(queue),
        }
    }
    Ok(dead)
}

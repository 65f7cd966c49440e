//! Connections, channels and what Seadragon declares: the shared queues and exchanges, each
//! process's own queues, and consumers.

use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::Names;
use crate::queue::schedule::RESCUE_LEVEL;

/// How long an unused reply, control or announcement queue survives its owner.
const OWNER_QUEUE_EXPIRES_MS: u32 = 30_000;

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
    declare_fanout(channel, &names.gateways()).await?;
    declare_fanout(channel, &names.workers()).await?;
    Ok(())
}

/// An unused model's job queue is removed after this long: longer than any job may wait.
const JOB_QUEUE_EXPIRES_MS: u32 = 25 * 3600 * 1000;

/// Declares the job queue `name` (see [`Names::jobs`]). Idempotent; gateways declare it before
/// their first publish, workers before they consume it.
pub async fn declare_jobs(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    // The priority count is fixed at declare time; changing it means deleting the queue. No
    // dead-letter exchange: an expired copy is a job that waited too long (its gateway has
    // failed it already) or the losing copy of a rescue, and keeping its body helps nobody.
    let mut args = FieldTable::default();
    args.insert(
        "x-max-priority".into(),
        AMQPValue::ShortShortUInt(RESCUE_LEVEL),
    );
    args.insert(
        "x-expires".into(),
        AMQPValue::LongUInt(JOB_QUEUE_EXPIRES_MS),
    );
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await?;
    Ok(())
}

/// A channel for consuming job queues, at most `slots` unacknowledged deliveries across all of
/// them (a global prefetch: per consumer, a worker serving several models could hold more jobs
/// than it has slots, which silently defeats priority).
pub async fn jobs_channel(connection: &Connection, slots: u16) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(slots, lapin::options::BasicQosOptions { global: true })
        .await?;
    Ok(channel)
}

/// Declares and consumes the job queue `name` on `channel`, with manual acks.
pub async fn consume_jobs(channel: &Channel, name: &str) -> Result<lapin::Consumer, lapin::Error> {
    declare_jobs(channel, name).await?;
    channel
        .basic_consume(
            name.into(),
            ShortString::from(""),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
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

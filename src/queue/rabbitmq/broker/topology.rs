//! Connections, channels and what Seadragon declares: the shared queues and exchanges, each
//! process's own queues, and consumers.

use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::Names;

/// Declares an own queue (see [`declare_owned`]) bound to a fanout exchange and consumes it
/// without acks (its messages are periodic state or wake-ups: losing one costs nothing).
pub async fn subscribe(
    consume: &Connection,
    queue: &str,
    exchange: &str,
) -> Result<lapin::Consumer, lapin::Error> {
    let channel = consume.create_channel().await?;
    declare_owned(&channel, queue).await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            ShortString::from(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    consume_on(&channel, queue, false).await
}

/// Declares an own queue and consumes it without acks, on a channel of `consume`.
pub async fn consume_owned(
    consume: &Connection,
    queue: &str,
) -> Result<lapin::Consumer, lapin::Error> {
    let channel = consume.create_channel().await?;
    declare_owned(&channel, queue).await?;
    consume_on(&channel, queue, false).await
}

async fn consume_on(
    channel: &Channel,
    queue: &str,
    acks: bool,
) -> Result<lapin::Consumer, lapin::Error> {
    channel
        .basic_consume(
            queue.into(),
            ShortString::from(""),
            lapin::options::BasicConsumeOptions {
                no_ack: !acks,
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
    declare_fanout(channel, &names.bell()).await?;
    Ok(())
}

/// An unused model's job queue is removed after this long: longer than any job may wait.
const JOB_QUEUE_EXPIRES_MS: u32 = 25 * 3600 * 1000;

/// Declares the job queue `name` (see [`Names::jobs`]): a quorum queue, replicated across the
/// cluster's nodes, so a job survives the loss of any minority of them. Idempotent; gateways
/// declare it before their first publish, workers before they pull from it. No dead-letter
/// exchange: an expired copy is a job that waited too long (its gateway has failed it
/// already) or the losing copy of a rescue, and keeping its body helps nobody.
pub async fn declare_jobs(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
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

/// Declares a queue owned by one process's connection: exclusive, so the broker deletes it
/// when that connection ends, and a reconnect declares a fresh one (under a new name, see
/// [`Names::owned`]) on whichever node it reaches. A durable queue would be stuck on its home
/// node: while that node is down nobody could declare or use the name.
pub async fn declare_owned(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let options = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await?;
    Ok(())
}

//! Confirmed publishing that tells a routed message from a returned one, with a time limit.

use std::future::Future;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, PublisherConfirm};

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

/// Publishes to `queue` and waits for the broker's confirm as long as the channel lives. For
/// a message that must not be sent twice and must not be given up while the broker is only
/// slow: under a resource alarm the broker stops reading, and a message that timed out here
/// would still arrive after the alarm, so sending it again would duplicate it. A dead
/// connection fails the wait (its channel's pending confirms fail), and heartbeats bound how
/// long a silent one takes to be declared dead.
pub async fn publish_patiently(
    channel: &Channel,
    queue: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<Published, PublishError> {
    let confirm = send(channel, queue, payload, properties, true).await?;
    verdict(confirm).await
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

/// Publishes a wake-up to a fanout exchange without waiting for its confirm: a lost one costs
/// a delay until the next periodic look, never a job.
pub async fn ring(channel: &Channel, exchange: &str, payload: &[u8]) {
    let properties = BasicProperties::default()
        .with_delivery_mode(1)
        .with_expiration("5000".into());
    let sent = channel.basic_publish(
        exchange.into(),
        ShortString::from(""),
        BasicPublishOptions::default(),
        payload,
        properties,
    );
    if let Err(e) = sent.await {
        tracing::debug!(error = %e, "a bell was not sent");
    }
}

/// JSON message properties with a correlation id.
pub fn json_properties(correlation_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id(correlation_id.into())
}

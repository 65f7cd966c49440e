//! The RabbitMQ backend: the same queue semantics as the embedded one, across processes.
//!
//! Topology (all names under a prefix, `seadragon` by default):
//! - `<prefix>.jobs.v3.<model>.p<level>`: one durable quorum queue per model and level 0..=4,
//!   replicated across the cluster's nodes. Jobs are persistent, published `mandatory` with a
//!   confirm and a time limit. Quorum queues before RabbitMQ 4.3 have no priorities, so a
//!   worker with a free slot pulls (`basic.get`, acknowledged when the job ends) from the
//!   highest level that holds work, among the models its Ollama has.
//! - `<prefix>.bell`: fanout exchange; a gateway rings it after each job it queues, so idle
//!   workers pull at once instead of polling (a periodic count repairs a lost bell).
//! - `<prefix>.reply.<gateway>.s<n>`, `<prefix>.control.<worker>.s<n>` and the subscription
//!   queues (`announce`, `peers`, `bell`): exclusive to the connection of broker session `n`,
//!   so they vanish with it and a reconnect declares fresh ones on whichever node it reaches.
//!   Workers send claims, start reports and events to the gateway's reply queue (`mandatory`,
//!   so a vanished gateway is noticed); gateways send grant, deny and cancel orders to the
//!   worker's control queue.
//! - `<prefix>.workers`: fanout exchange on which workers announce slots and models;
//!   `<prefix>.gateways`: fanout exchange on which gateways share their state.
//!
//! Claims: a worker runs a job only after its gateway granted the claim. Each grant has a
//! lease: the worker reports the start at once, or the gateway queues the job again; only the
//! latest grant's events reach the client. After a new broker session a gateway queues its
//! waiting jobs again under its new reply queue.
//!
//! Rescues: the owning gateway rescues a starving job by publishing a second copy at the rescue
//! level (4, above every tier) when the system-wide ration allows; the claim, arbitrated by
//! that gateway, makes whichever copy loses harmless.

mod broker;
mod gateway;
mod link;
mod outbox;
mod wire;
mod worker;

use serde::Serialize;

pub use gateway::RabbitGateway;
pub use worker::RabbitWorker;

/// Where the broker is and how this process names itself there.
#[derive(Debug, Clone)]
pub struct RabbitConfig {
    /// `amqp://user:pass@host:port/vhost`, or several such URLs separated by commas (the nodes
    /// of a cluster): each reconnect tries the next.
    pub url: String,
    /// Prefix of every queue and exchange name.
    pub prefix: String,
    /// This process's instance name, unique among gateways and workers.
    pub instance: String,
}

impl RabbitConfig {
    /// `text` with every password of the broker URLs replaced, for logs and health reports.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for url in self.url.split(',') {
            if let Ok(parsed) = reqwest::Url::parse(url.trim())
                && let Some(password) = parsed.password().filter(|p| !p.is_empty())
            {
                text = text.replace(password, "***");
            }
        }
        text
    }

    /// The broker URL to use for connection attempt `attempt`, rotating through the list.
    pub fn url_for(&self, attempt: u32) -> &str {
        let urls: Vec<&str> = self
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        match urls.len() {
            0 => self.url.as_str(),
            n => urls[usize::try_from(attempt).unwrap_or(0) % n],
        }
    }

    /// Names under `prefix` and a fresh random instance name.
    pub fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            instance: crate::ids::random_alphanumeric(12).to_lowercase(),
        }
    }
}

/// The state of one process's broker connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BrokerStatus {
    /// A session is up.
    pub connected: bool,
    /// The broker blocks publishing (memory or disk alarm).
    pub blocked: bool,
    /// Why the last session ended.
    pub last_error: Option<String>,
    /// Shutting down: no new jobs.
    #[serde(skip)]
    pub closing: bool,
}

/// Locks `m`, also after a panic elsewhere poisoned it: every value behind these locks stays
/// consistent between statements, so a poisoned one is still fit to use.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_rotate_through_a_list_of_broker_urls() {
        let config = RabbitConfig::new("amqp://a/%2f, amqp://b/%2f,,amqp://c/%2f", "p");
        let tried: Vec<&str> = (0..4).map(|n| config.url_for(n)).collect();
        assert_eq!(
            tried,
            [
                "amqp://a/%2f",
                "amqp://b/%2f",
                "amqp://c/%2f",
                "amqp://a/%2f"
            ]
        );
        let one = RabbitConfig::new("amqp://only/%2f", "p");
        assert_eq!(one.url_for(7), "amqp://only/%2f");
    }

    #[test]
    fn broker_passwords_never_reach_an_error_text() {
        let config = RabbitConfig::new(
            "amqp://sd:s3cret-pw@a:5672/%2f,amqp://sd:other-pw@b/%2f",
            "p",
        );
        let said = "cannot connect to amqp://sd:s3cret-pw@a:5672/%2f (other-pw)";
        let redacted = config.redact(said);
        assert!(
            !redacted.contains("s3cret-pw") && !redacted.contains("other-pw"),
            "{redacted}"
        );
        assert_eq!(config.redact("plain error"), "plain error");
    }
}

//! The names of everything Seadragon declares on the broker, under one prefix.

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

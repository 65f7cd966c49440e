//! The names of everything Seadragon declares on the broker, under one prefix.

use sha2::Digest as _;

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

    /// The priority job queue of one model: a job goes only to workers whose Ollama has its
    /// model. (`<p>.jobs.v2.`, since the single `<p>.jobs` of earlier versions had other
    /// arguments, which RabbitMQ refuses to change.) A name past the broker's 255-byte limit
    /// ends in a digest of the model instead.
    pub fn jobs(&self, model: &str) -> String {
        let name = format!("{}.jobs.v2.{model}", self.prefix);
        if name.len() <= 255 {
            return name;
        }
        let digest = sha2::Sha256::digest(model.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}.jobs.v2.sha256-{hex}", self.prefix)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_has_its_own_job_queue_within_the_name_limit() {
        let names = Names::new("sd");
        assert_eq!(names.jobs("llama3.2:latest"), "sd.jobs.v2.llama3.2:latest");
        let long = "m".repeat(300);
        let queue = names.jobs(&long);
        assert!(
            queue.len() <= 255 && queue.starts_with("sd.jobs.v2.sha256-"),
            "{queue}"
        );
        assert_ne!(queue, names.jobs(&"m".repeat(301)));
    }
}

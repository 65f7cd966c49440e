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

    /// The job queue of one model and level (0..=4): a quorum queue, so it survives the loss
    /// of a broker node. RabbitMQ before 4.3 has no priorities in quorum queues, so there is
    /// one queue per level and workers pull the highest non-empty one; and one set per model,
    /// so a job goes only to workers whose Ollama has its model. A name past the broker's
    /// 255-byte limit ends in a digest of the model instead. (`v3`: earlier versions declared
    /// classic queues under other names, and RabbitMQ refuses to change a queue's type.)
    pub fn jobs(&self, model: &str, level: u8) -> String {
        let name = format!("{}.jobs.v3.{model}.p{level}", self.prefix);
        if name.len() <= 255 {
            return name;
        }
        let digest = sha2::Sha256::digest(model.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}.jobs.v3.sha256-{hex}.p{level}", self.prefix)
    }

    /// The fanout exchange that rings when a job is queued, so idle workers pull at once
    /// instead of polling.
    pub fn bell(&self) -> String {
        format!("{}.bell", self.prefix)
    }

    /// A process's own queue of `kind` (`reply`, `control`, `peers`, `announce`, `bell`) in
    /// broker session `session`. Own queues are exclusive to the connection that declared
    /// them, so they vanish with it and a reconnect declares fresh ones wherever it lands,
    /// even when the node that held the old ones is down; the session number keeps a new
    /// name apart from one a half-dead old connection still holds.
    pub fn owned(&self, kind: &str, instance: &str, session: u32) -> String {
        format!("{}.{kind}.{instance}.s{session}", self.prefix)
    }

    /// The fanout exchange workers announce themselves on.
    pub fn workers(&self) -> String {
        format!("{}.workers", self.prefix)
    }

    /// The fanout exchange gateways share their state on.
    pub fn gateways(&self) -> String {
        format!("{}.gateways", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_and_level_has_its_own_job_queue_within_the_name_limit() {
        let names = Names::new("sd");
        assert_eq!(
            names.jobs("llama3.2:latest", 3),
            "sd.jobs.v3.llama3.2:latest.p3"
        );
        let long = "m".repeat(300);
        let queue = names.jobs(&long, 4);
        assert!(
            queue.len() <= 255 && queue.starts_with("sd.jobs.v3.sha256-") && queue.ends_with(".p4"),
            "{queue}"
        );
        assert_ne!(queue, names.jobs(&"m".repeat(301), 4));
        assert_eq!(names.owned("reply", "gw1", 2), "sd.reply.gw1.s2");
    }
}

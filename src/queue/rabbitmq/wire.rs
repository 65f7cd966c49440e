//! Messages on the broker: jobs (gateway → workers), replies (worker → gateway: claims and
//! events) and control orders (gateway → worker: grant, deny, cancel). All JSON, versioned.

use serde::{Deserialize, Serialize};

use crate::queue::{Job, JobEvent};

/// A copy of a job in a job queue. A rescue publishes a copy at the rescue level; the claim
/// makes sure only one of them runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMessage {
    /// Format version.
    pub v: u8,
    /// The job.
    pub job: Job,
    /// 0 for the first copy, +1 per copy after it (a rescue, a requeue after a lost worker).
    pub copy: u8,
    /// The level of the queue this copy was published to.
    #[serde(default)]
    pub level: u8,
    /// The owning gateway's reply queue.
    pub reply_to: String,
}

/// Worker → gateway, on the gateway's reply queue, `correlation_id` = job id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// The worker asks to run the job.
    Claim {
        /// The job.
        job_id: String,
        /// Which copy the worker received.
        copy: u8,
        /// Whether the broker delivered this copy before (a worker died holding it).
        redelivered: bool,
        /// The worker's name.
        worker: String,
        /// Generations the worker runs at once; the gateway reports the start with it when it
        /// grants, so the worker sends no separate start event.
        #[serde(default)]
        slots: usize,
        /// The worker's control queue, where the answer goes.
        control: String,
    },
    /// The worker got the grant and is starting the job: the grant's lease is kept.
    Running {
        /// The job.
        job_id: String,
        /// The grant it runs under.
        lease: u32,
        /// The worker's control queue, where a stale copy's stop order goes.
        control: String,
    },
    /// A liveness probe (see `broker::Prober`); ignored.
    Ping,
    /// Events of a granted job, in order.
    Events {
        /// The job.
        job_id: String,
        /// The grant they run under: events of a grant that lost its lease are dropped.
        #[serde(default)]
        lease: u32,
        /// One or more events (deltas may be coalesced).
        events: Vec<JobEvent>,
    },
}

/// Gateway → worker, on the worker's control queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// Run it.
    Grant {
        /// The job.
        job_id: String,
        /// The copy whose claim this answers: one worker may hold two copies of a job.
        #[serde(default)]
        copy: u8,
        /// Numbers the job's grants: the worker reports with it, and only the latest grant's
        /// reports count (an earlier one lost its lease).
        #[serde(default)]
        lease: u32,
    },
    /// Do not run it (client gone, expired, another copy won).
    Deny {
        /// The job.
        job_id: String,
        /// The copy whose claim this answers.
        #[serde(default)]
        copy: u8,
    },
    /// Stop running it: the client went away.
    Cancel {
        /// The job.
        job_id: String,
    },
    /// A liveness probe (see `broker::Prober`); ignored.
    Ping,
}

impl Control {
    /// The job the order is about.
    pub fn job_id(&self) -> &str {
        match self {
            Self::Grant { job_id, .. } | Self::Deny { job_id, .. } | Self::Cancel { job_id } => {
                job_id
            }
            Self::Ping => "",
        }
    }
}

/// Gateway → workers, on the bell exchange: a job was queued in this model's queue of this
/// level; idle workers pull.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bell {
    /// The job's model.
    pub model: String,
    /// The level of the queue it went to.
    pub level: u8,
}

/// What a worker announces on the fanout exchange every few seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announcement {
    /// The worker's name.
    pub worker: String,
    /// Generations it runs at once.
    pub slots: usize,
    /// The models its Ollama has installed (`/api/tags` entries, as JSON).
    pub models: Vec<serde_json::Value>,
    /// Whether its Ollama answered the last check.
    pub ollama_ok: bool,
    /// The models its Ollama has loaded (`/api/ps` entries, as JSON).
    #[serde(default)]
    pub loaded: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_orders_round_trip_with_a_kind_tag() {
        let claim = Reply::Claim {
            job_id: "j".into(),
            copy: 1,
            redelivered: false,
            worker: "w".into(),
            slots: 2,
            control: "c".into(),
        };
        let json = serde_json::to_string(&claim).unwrap();
        assert!(json.starts_with(r#"{"kind":"claim""#), "{json}");
        assert!(matches!(
            serde_json::from_str::<Reply>(&json).unwrap(),
            Reply::Claim {
                copy: 1,
                slots: 2,
                ..
            }
        ));
        // A claim from a worker that predates `slots` still reads.
        let old = r#"{"kind":"claim","job_id":"j","copy":0,"redelivered":false,"worker":"w","control":"c"}"#;
        assert!(matches!(
            serde_json::from_str::<Reply>(old).unwrap(),
            Reply::Claim { slots: 0, .. }
        ));
        let grant = Control::Grant {
            job_id: "j".into(),
            copy: 1,
            lease: 2,
        };
        let json = serde_json::to_string(&grant).unwrap();
        assert_eq!(serde_json::from_str::<Control>(&json).unwrap(), grant);
        assert_eq!(grant.job_id(), "j");
    }
}

//! Where a request's time goes: stage timestamps logged at `debug` under the target
//! `seadragon::timeline`, one line from the gateway and one from the worker per streamed job,
//! so a slow first token points at its stage (the benchmark's breakdown reads them).
//!
//! Gateway: accepted → authenticated → queued → first frame written. Worker: claimed →
//! Ollama request sent → first NDJSON line. Stamps are wall-clock microseconds, so the two
//! lines compare even when the gateway and the worker are separate processes on one machine.
//! With `debug` off for the target no clock is read: a request pays one cached check of the
//! filter at each stage.

use std::time::{SystemTime, UNIX_EPOCH};

/// The log target of the stage lines.
pub const TARGET: &str = "seadragon::timeline";

/// Whether stamps are taken: `debug` is on for [`TARGET`].
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
}

/// Now, in wall-clock microseconds, when stamps are taken.
pub fn stamp() -> Option<u64> {
    enabled().then(now_us)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The gateway's stamps of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct GatewayStamps {
    /// The request reached the router.
    pub accepted: Option<u64>,
    /// Its key was checked.
    pub authenticated: Option<u64>,
    /// Its job was in the queue.
    pub queued: Option<u64>,
    /// The frame with the first token was handed to the connection.
    pub first_frame: Option<u64>,
}

impl GatewayStamps {
    /// Logs the line of job `job`, if stamps were taken.
    pub fn log(&self, job: &str) {
        if self.accepted.is_none() && self.queued.is_none() {
            return;
        }
        tracing::debug!(
            target: TARGET,
            job,
            accepted_us = self.accepted.unwrap_or(0),
            authenticated_us = self.authenticated.unwrap_or(0),
            queued_us = self.queued.unwrap_or(0),
            first_frame_us = self.first_frame.unwrap_or(0),
            "gateway stages"
        );
    }
}

/// The worker's stamps of one job.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerStamps {
    /// The claim was granted.
    pub claimed: Option<u64>,
    /// The request was handed to the HTTP client for Ollama.
    pub ollama_sent: Option<u64>,
    /// The first NDJSON object of the answer was read.
    pub first_line: Option<u64>,
}

impl WorkerStamps {
    /// Stamps for a job claimed now; all empty when stamps are not taken.
    pub fn claimed_now() -> Self {
        Self {
            claimed: stamp(),
            ..Self::default()
        }
    }

    /// Whether this job is being stamped.
    pub fn on(&self) -> bool {
        self.claimed.is_some()
    }

    /// Logs the line of job `job`, if stamps were taken.
    pub fn log(&self, job: &str) {
        if !self.on() {
            return;
        }
        tracing::debug!(
            target: TARGET,
            job,
            claimed_us = self.claimed.unwrap_or(0),
            ollama_sent_us = self.ollama_sent.unwrap_or(0),
            first_line_us = self.first_line.unwrap_or(0),
            "worker stages"
        );
    }
}

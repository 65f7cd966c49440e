//! The results as data: percentile summaries and what each scenario, phase and process
//! measured, serialised as the JSON file; and the two output channels (stdout, stderr).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::queue_depth::DepthResult;

/// A latency distribution; the unit is in the field name of whoever holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dist {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Dist {
    /// Summarises integer samples, dividing each by 1000 (µs to ms, or ns to µs).
    #[allow(clippy::cast_precision_loss)]
    pub fn thousandths(samples: &mut [u32]) -> Self {
        samples.sort_unstable();
        let scale = |v: u32| f64::from(v) / 1000.0;
        // Nearest rank: the smallest sample with at least p% of samples at or below it.
        let pct = |p: f64| {
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples
                .get(rank.saturating_sub(1).min(samples.len().saturating_sub(1)))
                .map_or(0.0, |&v| scale(v))
        };
        let sum: u64 = samples.iter().map(|&v| u64::from(v)).sum();
        Self {
            n: samples.len(),
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: samples.last().map_or(0.0, |&v| scale(v)),
            mean: if samples.is_empty() {
                0.0
            } else {
                sum as f64 / samples.len() as f64 / 1000.0
            },
        }
    }
}

/// The fake's generation profile during a phase.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// Time to first token.
    pub first_token_ms: f64,
    /// Tokens per answer.
    pub tokens: u32,
    /// Delay between tokens.
    pub gap_ms: f64,
}

/// Seadragon minus the baseline, percentile by percentile, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Added {
    /// Added time to first token.
    pub ttft_ms: Option<[f64; 3]>,
    /// Added p99 inter-token gap.
    pub gap_p99_ms: Option<f64>,
    /// Added total time, p50 / p90 / p99.
    pub total_ms: Option<[f64; 3]>,
}

/// One phase of load against one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Stable name, shared across scenarios (`ttft_c64`, `short_jobs`, ...).
    pub name: &'static str,
    /// Concurrent users.
    pub users: usize,
    /// Streamed or not.
    pub stream: bool,
    /// What the fake generated.
    pub profile: ProfileReport,
    /// Complete, correct answers.
    pub ok: u64,
    /// Failed or incomplete answers.
    pub errors: u64,
    /// Tokens that never arrived.
    pub missing_tokens: u64,
    /// Wall time of the measured part.
    pub elapsed_s: f64,
    /// Completed requests per second.
    pub requests_per_s: f64,
    /// Tokens received per second.
    pub tokens_per_s: f64,
    /// Time to first token (streams).
    pub ttft_ms: Option<Dist>,
    /// Gaps between token frames (streams).
    pub gap_ms: Option<Dist>,
    /// Total time per request.
    pub total_ms: Dist,
    /// CPU seconds per 1,000 completed requests, per Seadragon process role.
    pub cpu_s_per_1k: BTreeMap<&'static str, f64>,
    /// Compared with the baseline's phase of the same name.
    pub added: Option<Added>,
}

/// Memory of one Seadragon process, in MB.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// `serve`, `gateway` or `worker`.
    pub role: &'static str,
    /// After start-up and key creation, before any load.
    pub rss_idle_mb: Option<f64>,
    /// Peak while 1,000 streams were open.
    pub rss_1000_streams_mb: Option<f64>,
    /// After every phase ended.
    pub rss_after_mb: Option<f64>,
}

/// Everything measured for one way of reaching the fake.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// `baseline`, `embedded` or `rabbitmq`.
    pub name: &'static str,
    /// What runs in it.
    pub description: String,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    /// The phases, in order.
    pub phases: Vec<PhaseReport>,
    /// Seadragon processes.
    pub processes: Vec<ProcessReport>,
    /// Errors over all phases.
    pub errors: u64,
    /// Missing tokens over all phases.
    pub missing_tokens: u64,
}

/// One floor the issue sets, and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    /// What is measured.
    pub what: String,
    /// The limit, in words.
    pub limit: String,
    /// The measured value.
    pub measured: Option<f64>,
    /// Whether this run met it.
    pub verdict: Verdict,
}

/// What a run says about one floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the limit.
    Met,
    /// Outside the limit.
    Missed,
    /// The baseline was slower than Seadragon by more than noise allows: rerun.
    Unclear,
    /// Not measured in this run.
    NotRun,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Logical CPUs.
    pub cores: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// A short smoke run rather than the full benchmark.
    pub quick: bool,
    /// How the numbers were taken.
    pub notes: Vec<String>,
    /// Baseline, embedded and RabbitMQ.
    pub scenarios: Vec<ScenarioReport>,
    /// The in-process queue depth test.
    pub queue: Option<Vec<DepthResult>>,
    /// The floors and whether they were met.
    pub floors: Vec<Floor>,
}

/// A progress or log line on stderr.
#[allow(clippy::print_stderr)]
pub fn log(line: &str) {
    eprintln!("{line}");
}

/// The tables on stdout.
#[allow(clippy::print_stdout)]
pub fn print(text: &str) {
    print!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).map(|v| v * 1000).collect();
        let d = Dist::thousandths(&mut samples);
        assert_eq!((d.p50, d.p90, d.p99, d.max), (50.0, 90.0, 99.0, 100.0));
        assert!((d.mean - 50.5).abs() < 1e-9);
        assert_eq!(Dist::thousandths(&mut []).n, 0);
    }
}

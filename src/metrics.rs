//! Prometheus metrics (OpenMetrics text at `GET /metrics`): what happened to requests, fed by
//! the same end-of-request report as the admin statistics, plus the queue and worker state read
//! at scrape time.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::queue::{JobBoard, JobEnd, JobReport, QueueSnapshot, SchedulingView};

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Every metric Seadragon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    shed: Family<Labels, Counter>,
    rescues: Family<Labels, Counter>,
    starving: Family<Labels, Gauge>,
    failures: Family<Labels, Counter>,
    tokens: Family<Labels, Counter>,
    queue_wait: Histograms,
    first_token: Histograms,
    tokens_per_second: Histograms,
    queue_depth: Family<Labels, Gauge>,
    oldest_wait: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    running: Gauge,
    worker_in_flight: Family<Labels, Gauge>,
    worker_slots: Family<Labels, Gauge>,
}

fn seconds_histogram() -> Histogram {
    // 1 ms to about 9 minutes: queue waits and first tokens span that whole range.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

fn rate_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            registry: Mutex::new(Registry::with_prefix("seadragon")),
            requests: Family::default(),
            refusals: Family::default(),
            shed: Family::default(),
            rescues: Family::default(),
            starving: Family::default(),
            failures: Family::default(),
            tokens: Family::default(),
            queue_wait: Family::new_with_constructor(seconds_histogram),
            first_token: Family::new_with_constructor(seconds_histogram),
            tokens_per_second: Family::new_with_constructor(rate_histogram),
            queue_depth: Family::default(),
            oldest_wait: Family::default(),
            running: Gauge::default(),
            worker_in_flight: Family::default(),
            worker_slots: Family::default(),
        };
        {
            let mut r = m.lock();
            r.register(
                "requests",
                "Requests that reached the queue, by tier and outcome",
                m.requests.clone(),
            );
            r.register(
                "refusals",
                "Requests refused by a limit, by tier and reason",
                m.refusals.clone(),
            );
            r.register(
                "shed",
                "Requests refused at admission because their predicted queue wait exceeded the tier's max wait",
                m.shed.clone(),
            );
            r.register(
                "rescues",
                "Starving jobs this gateway lifted above every tier, by tier",
                m.rescues.clone(),
            );
            r.register(
                "queue_starving",
                "Queued jobs waiting longer than their tier's starvation time",
                m.starving.clone(),
            );
            r.register("job_failures", "Jobs that failed after queueing (Ollama errors, expiry, clears), by tier and HTTP status", m.failures.clone());
            r.register(
                "tokens",
                "Prompt and completion tokens of finished requests",
                m.tokens.clone(),
            );
            r.register(
                "queue_wait_seconds",
                "Time from submission to a worker's start, by tier",
                m.queue_wait.clone(),
            );
            r.register(
                "time_to_first_token_seconds",
                "Time from submission to the first token, by tier",
                m.first_token.clone(),
            );
            r.register(
                "generation_tokens_per_second",
                "Completion tokens per second of finished generations, by tier",
                m.tokens_per_second.clone(),
            );
            r.register("queue_depth", "Queued jobs by tier", m.queue_depth.clone());
            r.register(
                "queue_oldest_wait_seconds",
                "Wait of the oldest queued job, by tier",
                m.oldest_wait.clone(),
            );
            r.register("jobs_running", "Jobs running on workers", m.running.clone());
            r.register(
                "worker_in_flight",
                "Jobs of this gateway running on each worker",
                m.worker_in_flight.clone(),
            );
            r.register(
                "worker_slots",
                "Slots of each worker seen",
                m.worker_slots.clone(),
            );
        }
        m
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a request refused before queueing (`rate`, `concurrency`, `queue_full`).
    pub fn refused(&self, tier: &str, reason: &str) {
        self.refusals
            .get_or_create(&labels(&[("tier", tier), ("reason", reason)]))
            .inc();
    }

    /// Counts a request shed at admission: its predicted wait exceeded its tier's max wait.
    pub fn shed(&self, tier: &str) {
        self.shed.get_or_create(&labels(&[("tier", tier)])).inc();
        self.refused(tier, "queue_full");
    }

    /// Records how a queued request ended.
    pub fn job_ended(&self, tier: &str, model: &str, report: &JobReport) {
        let outcome = match report.end {
            JobEnd::Finished => "completed",
            JobEnd::Failed(_) | JobEnd::Lost => "failed",
            JobEnd::Abandoned => "cancelled",
        };
        let tier_label = labels(&[("tier", tier)]);
        self.requests
            .get_or_create(&labels(&[("tier", tier), ("outcome", outcome)]))
            .inc();
        if let JobEnd::Failed(status) = report.end {
            self.failures
                .get_or_create(&labels(&[("tier", tier), ("status", &status.to_string())]))
                .inc();
        }
        if let Some(wait) = report.queue_wait {
            self.queue_wait
                .get_or_create(&tier_label)
                .observe(wait.as_secs_f64());
        }
        if let Some(first) = report.first_token {
            self.first_token
                .get_or_create(&tier_label)
                .observe(first.as_secs_f64());
        }
        if let Some(usage) = report.usage {
            for (direction, n) in [
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
            ] {
                self.tokens
                    .get_or_create(&labels(&[
                        ("tier", tier),
                        ("model", model),
                        ("direction", direction),
                    ]))
                    .inc_by(n);
            }
            if let Some(generation) = report.generation.filter(|d| *d > Duration::ZERO) {
                let rate = usage.completion_tokens as f64 / generation.as_secs_f64();
                self.tokens_per_second
                    .get_or_create(&tier_label)
                    .observe(rate);
            }
        }
    }

    /// Counts a request the queue refused.
    pub fn rejected(&self, tier: &str) {
        self.requests
            .get_or_create(&labels(&[("tier", tier), ("outcome", "rejected")]))
            .inc();
    }

    /// The OpenMetrics text, with the queue and worker gauges as they are now.
    pub fn render(
        &self,
        snapshot: &QueueSnapshot,
        scheduling: &SchedulingView,
        board: &JobBoard,
    ) -> String {
        self.queue_depth.clear();
        self.oldest_wait.clear();
        self.starving.clear();
        for (tier, &total) in &scheduling.rescues {
            // The queue counts rescues itself; the counter catches up to it.
            let counter = self.rescues.get_or_create(&labels(&[("tier", tier)]));
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        for t in &snapshot.tiers {
            let tier = labels(&[("tier", &t.tier)]);
            self.starving
                .get_or_create(&tier)
                .set(i64::try_from(t.starving).unwrap_or(i64::MAX));
            self.queue_depth
                .get_or_create(&tier)
                .set(i64::try_from(t.queued).unwrap_or(i64::MAX));
            self.oldest_wait
                .get_or_create(&tier)
                .set(t.oldest_wait_secs);
        }
        self.running
            .set(i64::try_from(snapshot.running).unwrap_or(i64::MAX));
        self.worker_in_flight.clear();
        self.worker_slots.clear();
        for w in board.workers() {
            let worker = labels(&[("worker", &w.name)]);
            self.worker_in_flight
                .get_or_create(&worker)
                .set(i64::try_from(w.running).unwrap_or(i64::MAX));
            self.worker_slots
                .get_or_create(&worker)
                .set(i64::try_from(w.slots).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.lock());
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Usage;

    #[test]
    fn a_finished_job_shows_up_in_counters_and_histograms() {
        let m = Metrics::default();
        m.job_ended(
            "pro",
            "llama3.2:latest",
            &JobReport {
                queue_wait: Some(Duration::from_millis(20)),
                first_token: Some(Duration::from_millis(70)),
                generation: Some(Duration::from_secs(2)),
                usage: Some(Usage::new(10, 100)),
                end: JobEnd::Finished,
            },
        );
        m.refused("free", "rate");
        let text = m.render(
            &QueueSnapshot::default(),
            &SchedulingView::default(),
            &JobBoard::default(),
        );
        assert!(
            text.contains(r#"seadragon_requests_total{tier="pro",outcome="completed"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"seadragon_refusals_total{tier="free",reason="rate"} 1"#));
        assert!(text.contains(r#"seadragon_tokens_total{tier="pro",model="llama3.2:latest",direction="completion"} 100"#));
        assert!(text.contains(r#"seadragon_queue_wait_seconds_count{tier="pro"} 1"#));
        assert!(text.contains(r#"seadragon_generation_tokens_per_second_sum{tier="pro"} 50.0"#));
        assert!(text.ends_with("# EOF\n"));
    }
}

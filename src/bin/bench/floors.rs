//! Compares every Seadragon phase with the baseline's phase of the same name, and checks the
//! floors the benchmark issue sets for a 2-core machine.

use crate::report::{Added, Dist, Floor, PhaseReport, Report};

/// Adds the comparison with the baseline to every phase, then checks the floors.
pub fn finish(report: &mut Report) {
    let baseline = report
        .scenarios
        .iter()
        .find(|s| s.name == "baseline")
        .cloned();
    if let Some(baseline) = baseline {
        for s in report.scenarios.iter_mut().filter(|s| s.name != "baseline") {
            for phase in &mut s.phases {
                if let Some(base) = baseline.phases.iter().find(|b| b.name == phase.name) {
                    phase.added = Some(added(phase, base));
                }
            }
        }
    }
    report.floors = floors(report);
}

fn added(phase: &PhaseReport, base: &PhaseReport) -> Added {
    let diff = |a: &Dist, b: &Dist| [a.p50 - b.p50, a.p90 - b.p90, a.p99 - b.p99];
    Added {
        ttft_ms: phase
            .ttft_ms
            .as_ref()
            .zip(base.ttft_ms.as_ref())
            .map(|(a, b)| diff(a, b)),
        gap_p99_ms: phase
            .gap_ms
            .as_ref()
            .zip(base.gap_ms.as_ref())
            .map(|(a, b)| a.p99 - b.p99),
        total_ms: (!phase.stream).then(|| diff(&phase.total_ms, &base.total_ms)),
    }
}

fn floors(report: &Report) -> Vec<Floor> {
    let scenario = |name: &str| {
        report
            .scenarios
            .iter()
            .find(|s| s.name == name && s.skipped.is_none())
    };
    let phase = |name: &str, phase: &str| {
        scenario(name).and_then(|s| s.phases.iter().find(|p| p.name == phase))
    };
    let ttft_p99 = |name: &str| {
        phase(name, "ttft_c64")
            .and_then(|p| p.added.as_ref())
            .and_then(|a| a.ttft_ms)
            .map(|[_, _, p99]| p99)
    };
    let jobs = |name: &str| phase(name, "short_jobs").map(|p| p.requests_per_s);
    let most = |limit: f64| move |v: f64| v <= limit;
    let least = |limit: f64| move |v: f64| v >= limit;
    let floor = |what: &str, limit: &str, measured: Option<f64>, ok: &dyn Fn(f64) -> bool| Floor {
        what: what.to_owned(),
        limit: limit.to_owned(),
        measured,
        met: measured.map(ok),
    };
    let serve_rss = scenario("embedded")
        .and_then(|s| s.processes.first())
        .and_then(|p| p.rss_1000_streams_mb);
    let queue = report.queue.as_deref().unwrap_or_default();
    let at = |depth: usize| queue.iter().find(|r| r.depth == depth);
    let queue_rss = at(100_000).map(|r| r.extra_rss_mb);
    let flatness = at(100_000)
        .zip(at(10))
        .map(|(deep, shallow)| deep.dispatch_us.p50 / shallow.dispatch_us.p50.max(1e-3));
    let mut out = vec![
        floor(
            "embedded: added TTFT p99 at c=64 (ms)",
            "<= 1",
            ttft_p99("embedded"),
            &most(1.0),
        ),
        floor(
            "embedded: short jobs per second",
            ">= 3000",
            jobs("embedded"),
            &least(3000.0),
        ),
        floor(
            "embedded: RSS at 1,000 streams (MB)",
            "<= 50",
            serve_rss,
            &most(50.0),
        ),
        floor(
            "rabbitmq: added TTFT p99 at c=64 (ms)",
            "<= 3",
            ttft_p99("rabbitmq"),
            &most(3.0),
        ),
        floor(
            "rabbitmq: short jobs per second",
            ">= 2500",
            jobs("rabbitmq"),
            &least(2500.0),
        ),
        floor(
            "queue: extra RSS at 100,000 queued (MB)",
            "<= 100",
            queue_rss,
            &most(100.0),
        ),
        floor(
            "queue: dispatch p50 at 100,000 / at 10 queued",
            "<= 2 (flat)",
            flatness,
            &most(2.0),
        ),
    ];
    for s in report.scenarios.iter().filter(|s| s.skipped.is_none()) {
        #[allow(clippy::cast_precision_loss)]
        let bad = (s.errors + s.missing_tokens) as f64;
        out.push(floor(
            &format!("{}: errors + missing tokens", s.name),
            "= 0",
            Some(bad),
            &most(0.0),
        ));
    }
    out
}

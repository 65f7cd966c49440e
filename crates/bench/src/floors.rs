//! Compares every Seadragon phase with the baseline's phase of the same name, and checks the
//! floors the benchmark issue sets for a 2-core machine.

use crate::report::{Added, Dist, Floor, PhaseReport, Report, Verdict};

/// How far below zero an added latency may fall before the baseline itself is suspect: a
/// stall of the shared benchmark process during the baseline makes Seadragon look faster
/// than the fake it sits in front of, and such a run says nothing about the floor.
const NOISE_MS: f64 = 0.5;

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
    let verdict = |ok: bool| if ok { Verdict::Met } else { Verdict::Missed };
    let most = move |limit: f64| move |v: f64| verdict(v <= limit);
    let least = move |limit: f64| move |v: f64| verdict(v >= limit);
    let added_most = move |limit: f64| {
        move |v: f64| {
            if v < -NOISE_MS {
                Verdict::Unclear
            } else {
                verdict(v <= limit)
            }
        }
    };
    let floor =
        |what: &str, limit: &str, measured: Option<f64>, ok: &dyn Fn(f64) -> Verdict| Floor {
            what: what.to_owned(),
            limit: limit.to_owned(),
            measured,
            verdict: measured.map_or(Verdict::NotRun, ok),
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
            &added_most(1.0),
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
            &added_most(3.0),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::{ProfileReport, ScenarioReport};

    fn ttft_phase(p99: f64) -> PhaseReport {
        PhaseReport {
            name: "ttft_c64",
            users: 64,
            stream: true,
            profile: ProfileReport {
                first_token_ms: 50.0,
                tokens: 100,
                gap_ms: 10.0,
            },
            ok: 100,
            errors: 0,
            missing_tokens: 0,
            elapsed_s: 1.0,
            requests_per_s: 100.0,
            tokens_per_s: 10_000.0,
            ttft_ms: Some(Dist {
                n: 100,
                p50: 50.0,
                p90: 50.0,
                p99,
                max: p99,
                mean: 50.0,
            }),
            gap_ms: None,
            total_ms: Dist::default(),
            cpu_s_per_1k: BTreeMap::new(),
            added: None,
        }
    }

    fn scenario(name: &'static str, p99: f64) -> ScenarioReport {
        ScenarioReport {
            name,
            description: String::new(),
            skipped: None,
            phases: vec![ttft_phase(p99)],
            processes: Vec::new(),
            errors: 0,
            missing_tokens: 0,
        }
    }

    fn embedded_ttft_verdict(baseline_p99: f64, embedded_p99: f64) -> Verdict {
        let mut report = Report {
            cores: 2,
            memory_gib: 24.0,
            quick: true,
            notes: Vec::new(),
            scenarios: vec![
                scenario("baseline", baseline_p99),
                scenario("embedded", embedded_p99),
            ],
            queue: None,
            floors: Vec::new(),
        };
        finish(&mut report);
        report.floors[0].verdict
    }

    #[test]
    fn added_latency_is_judged_against_the_limit_unless_the_baseline_was_slower() {
        assert_eq!(embedded_ttft_verdict(51.0, 51.8), Verdict::Met);
        assert_eq!(embedded_ttft_verdict(51.0, 53.0), Verdict::Missed);
        assert_eq!(embedded_ttft_verdict(51.0, 50.9), Verdict::Met);
        assert_eq!(embedded_ttft_verdict(80.0, 52.0), Verdict::Unclear);
    }
}

//! The results: percentile summaries, one table per scenario on stdout, the floors, and the
//! same data as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::queue_depth::DepthResult;

/// A latency distribution; the unit is in the field name of whoever holds it.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// Whether the floor was met (`None`: not measured in this run).
    pub met: Option<bool>,
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

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

fn signed(v: f64) -> String {
    format!("{v:+.2}")
}

fn three(v: Option<[f64; 3]>) -> [String; 3] {
    v.map_or_else(
        || [String::new(), String::new(), String::new()],
        |[a, b, c]| [signed(a), signed(b), signed(c)],
    )
}

fn thousands(v: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn latency_rows(phase: &PhaseReport) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let label = |metric: &str| format!("{} {metric}, c={}", phase.name, phase.users);
    let added = phase.added.clone().unwrap_or_default();
    let errors = format!("{}/{}", phase.errors, phase.missing_tokens);
    if let Some(t) = &phase.ttft_ms {
        let [a50, a90, a99] = three(added.ttft_ms);
        rows.push(vec![
            label("first token"),
            t.n.to_string(),
            ms(t.p50),
            ms(t.p90),
            ms(t.p99),
            a50,
            a90,
            a99,
            errors.clone(),
        ]);
    }
    if let Some(g) = &phase.gap_ms {
        rows.push(vec![
            label("token gap"),
            g.n.to_string(),
            ms(g.p50),
            ms(g.p90),
            ms(g.p99),
            String::new(),
            String::new(),
            added.gap_p99_ms.map(signed).unwrap_or_default(),
            String::new(),
        ]);
    }
    if !phase.stream {
        let t = &phase.total_ms;
        let [a50, a90, a99] = three(added.total_ms);
        rows.push(vec![
            label("total"),
            t.n.to_string(),
            ms(t.p50),
            ms(t.p90),
            ms(t.p99),
            a50,
            a90,
            a99,
            errors,
        ]);
    }
    rows
}

/// One scenario as text.
pub fn scenario_text(s: &ScenarioReport) -> String {
    let mut out = format!("\n== {}: {} ==\n", s.name, s.description);
    if let Some(reason) = &s.skipped {
        let _ = writeln!(out, "skipped: {reason}");
        return out;
    }
    let mut rows = vec![vec![
        "latency (ms)".to_owned(),
        "n".to_owned(),
        "p50".to_owned(),
        "p90".to_owned(),
        "p99".to_owned(),
        "+p50".to_owned(),
        "+p90".to_owned(),
        "+p99".to_owned(),
        "err/miss".to_owned(),
    ]];
    for phase in &s.phases {
        rows.extend(latency_rows(phase));
    }
    out.push_str(&table(&rows));
    let mut rows = Vec::new();
    for phase in &s.phases {
        let cpu: Vec<String> = phase
            .cpu_s_per_1k
            .iter()
            .map(|(role, v)| format!("{role} {v:.3}"))
            .collect();
        let cpu = if cpu.is_empty() {
            String::new()
        } else {
            format!("CPU s/1k requests: {}", cpu.join(", "))
        };
        let rate = match phase.name {
            "short_jobs" => format!("{} jobs/s", thousands(phase.requests_per_s)),
            "long_answers" => format!("{} tokens/s", thousands(phase.tokens_per_s)),
            "ttft_c64" => format!("{} requests/s", thousands(phase.requests_per_s)),
            _ => continue,
        };
        rows.push(vec![
            format!(
                "{} ({} tokens, c={})",
                phase.name, phase.profile.tokens, phase.users
            ),
            rate,
            cpu,
            format!("err/miss {}/{}", phase.errors, phase.missing_tokens),
        ]);
    }
    for p in &s.processes {
        let mb = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        rows.push(vec![
            format!("memory of {} (MB)", p.role),
            format!("idle {}", mb(p.rss_idle_mb)),
            format!("1,000 streams {}", mb(p.rss_1000_streams_mb)),
            format!("after load {}", mb(p.rss_after_mb)),
        ]);
    }
    out.push_str(&table(&rows));
    let _ = writeln!(
        out,
        "errors {}, missing tokens {} (must both be 0)",
        s.errors, s.missing_tokens
    );
    out
}

/// The queue depth test as text.
pub fn queue_text(results: &[DepthResult]) -> String {
    let mut rows = vec![vec![
        "queued jobs".to_owned(),
        "extra RSS MB".to_owned(),
        "dispatch µs p50".to_owned(),
        "p99".to_owned(),
        "mean".to_owned(),
        "submit µs p50".to_owned(),
        "p99".to_owned(),
    ]];
    for r in results {
        rows.push(vec![
            thousands(r.depth as f64),
            format!("{:.1}", r.extra_rss_mb),
            format!("{:.2}", r.dispatch_us.p50),
            format!("{:.2}", r.dispatch_us.p99),
            format!("{:.2}", r.dispatch_us.mean),
            format!("{:.2}", r.submit_us.p50),
            format!("{:.2}", r.submit_us.p99),
        ]);
    }
    format!(
        "\n== queue: embedded queue in process (next + claim per job) ==\n{}",
        table(&rows)
    )
}

/// The floors as text.
pub fn floors_text(floors: &[Floor]) -> String {
    let mut rows = vec![vec![
        "floor".to_owned(),
        "limit".to_owned(),
        "measured".to_owned(),
        "met".to_owned(),
    ]];
    for f in floors {
        rows.push(vec![
            f.what.clone(),
            f.limit.clone(),
            f.measured
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            match f.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "not run",
            }
            .to_owned(),
        ]);
    }
    format!("\n== floors (2-core machine) ==\n{}", table(&rows))
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

    #[test]
    fn big_numbers_get_separators() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(12.0), "12");
    }
}

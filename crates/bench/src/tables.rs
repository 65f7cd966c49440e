//! The results as text: one table per scenario, the queue test and the floors.

use std::fmt::Write as _;

use crate::queue_depth::DepthResult;
use crate::report::{Floor, PhaseReport, ScenarioReport, Verdict};

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
pub fn scenario(s: &ScenarioReport) -> String {
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
pub fn queue(results: &[DepthResult]) -> String {
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
pub fn floors(floors: &[Floor]) -> String {
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
            match f.verdict {
                Verdict::Met => "yes",
                Verdict::Missed => "NO",
                Verdict::Unclear => "unclear (noisy baseline; rerun)",
                Verdict::NotRun => "not run",
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
    fn big_numbers_get_separators() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(12.0), "12");
    }
}

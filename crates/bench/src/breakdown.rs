//! Where the time to the first token goes, stage by stage: short streamed answers at c=1
//! against Seadragon processes started with `seadragon::timeline=debug`, whose stage lines
//! (see the product's `timeline` module) are joined by job id, and matched in order with the
//! client's own send and first-token times.
//!
//! It runs on processes of its own, after the scenario's phases, so the logging it needs
//! never weighs on the other figures.

use std::collections::HashMap;

use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::load::{self, Expected, Phase, Target};
use crate::report::Dist;
use crate::scenario::SHORT;
use crate::spawn::Process;

/// The stages, in order, as (name, from field, to field); `sent` and `received` are the
/// client's, the rest the product's.
const STAGES: [(&str, &str, &str); 8] = [
    ("client sent -> accepted", "sent", "accepted_us"),
    (
        "accepted -> authenticated",
        "accepted_us",
        "authenticated_us",
    ),
    ("authenticated -> queued", "authenticated_us", "queued_us"),
    ("queued -> claimed", "queued_us", "claimed_us"),
    (
        "claimed -> Ollama request sent",
        "claimed_us",
        "ollama_sent_us",
    ),
    (
        "Ollama request sent -> first NDJSON line (the fake's 20 ms)",
        "ollama_sent_us",
        "first_line_us",
    ),
    (
        "first NDJSON line -> first frame written",
        "first_line_us",
        "first_frame_us",
    ),
    (
        "first frame written -> client read it",
        "first_frame_us",
        "received",
    ),
];

/// One stage's distribution, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// `from -> to`.
    pub stage: &'static str,
    /// Its durations.
    pub ms: Dist,
}

/// Runs the breakdown load against `target` and reads the stage lines of `processes`.
pub async fn run(
    target: &Target,
    processes: &[Process],
    fake: &fake_ollama::FakeOllama,
    quick: bool,
) -> Vec<Stage> {
    SHORT.apply(fake);
    let phase = Phase {
        users: 1,
        stream: true,
        duration: std::time::Duration::from_secs(if quick { 1 } else { 10 }),
        warmup: false,
        once: false,
        stagger: std::time::Duration::ZERO,
        max_requests: 100_000,
        endpoint: Endpoint::Chat,
        jitter: true,
        wall_clock: true,
    };
    let expected = Expected {
        prompt: SHORT.prompt().into(),
        text: SHORT.expected_text().into(),
        tokens: SHORT.tokens,
    };
    let outcome = load::run(target, &phase, &expected).await;
    // The last lines are written as the last answers end.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let lines: Vec<String> = processes
        .iter()
        .flat_map(|p| p.timeline.lock().map(|l| l.clone()).unwrap_or_default())
        .collect();
    stages(&lines, &outcome.walls)
}

/// Joins the stage lines by job and with the client's times, and summarises each stage.
fn stages(lines: &[String], walls: &[(u64, u64)]) -> Vec<Stage> {
    let mut jobs: HashMap<String, HashMap<String, u64>> = HashMap::new();
    for line in lines {
        let fields = fields(line);
        if let Some(job) = fields.get("job") {
            let stamps = jobs.entry(job.clone()).or_default();
            stamps.extend(
                fields
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.parse::<u64>().ok()?))),
            );
        }
    }
    let mut requests: Vec<HashMap<String, u64>> = jobs
        .into_values()
        .filter(|s| s.get("accepted_us").is_some_and(|&v| v > 0))
        .collect();
    requests.sort_by_key(|s| s.get("accepted_us").copied());
    // At c=1 the k-th request the client sent is the k-th the gateway accepted.
    if requests.len() == walls.len() {
        for (stamps, &(sent, received)) in requests.iter_mut().zip(walls) {
            stamps.insert("sent".into(), sent);
            stamps.insert("received".into(), received);
        }
    }
    STAGES
        .iter()
        .map(|&(stage, from, to)| {
            let mut samples: Vec<u32> = requests
                .iter()
                .filter_map(|s| {
                    let (a, b) = (*s.get(from)?, *s.get(to)?);
                    (a > 0 && b > 0).then(|| u32::try_from(b.saturating_sub(a)).unwrap_or(0))
                })
                .collect();
            Stage {
                stage,
                ms: Dist::thousandths(&mut samples),
            }
        })
        .collect()
}

/// The `key=value` fields of one plain-text log line.
fn fields(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|word| {
            let (k, v) = word.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_and_worker_lines_join_by_job_and_match_the_client_in_order() {
        let lines = [
            "T DEBUG seadragon::timeline: gateway stages job=j1 accepted_us=100 authenticated_us=110 queued_us=130 first_frame_us=20300".to_owned(),
            "T DEBUG seadragon::timeline: worker stages job=j1 claimed_us=150 ollama_sent_us=160 first_line_us=20200".to_owned(),
        ];
        let stages = stages(&lines, &[(90, 20350)]);
        let p50 = |i: usize| stages[i].ms.p50;
        assert!((p50(0) - 0.010).abs() < 1e-9);
        assert!((p50(3) - 0.020).abs() < 1e-9);
        assert!((p50(6) - 0.100).abs() < 1e-9);
        assert!((p50(7) - 0.050).abs() < 1e-9);
    }
}

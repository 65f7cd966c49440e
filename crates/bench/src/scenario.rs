//! The phases every scenario goes through, in order, and what each records: latency at
//! realistic generations, throughput with an instant fake, relay speed with long answers,
//! CPU per request and memory with 1,000 open streams.

use std::collections::BTreeMap;
use std::time::Duration;

use fake_ollama::FakeOllama;

use crate::backend::Profile;
use crate::endpoint::Endpoint;
use crate::load::{self, Expected, Phase, Target};
use crate::procstat;
use crate::report::{Dist, PhaseReport, ProcessReport, ProfileReport, ScenarioReport};
use crate::spawn::Process;

/// Upper bound of recorded requests in one phase, whatever its duration.
const MAX_REQUESTS: u64 = 2_000_000;

/// How often memory is sampled while 1,000 streams are open.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// A realistic generation: 50 ms to the first token, 100 tokens 10 ms apart (a quick run
/// keeps the timing but answers with 20 tokens, so its phases take a quarter of a second).
const REALISTIC: Profile = Profile {
    first_token: Duration::from_millis(50),
    tokens: 100,
    gap: Duration::from_millis(10),
};

/// An instant backend: one token at once, so only the path itself costs time.
const INSTANT: Profile = Profile {
    first_token: Duration::ZERO,
    tokens: 1,
    gap: Duration::ZERO,
};

/// Long answers generated as fast as the fake can write them.
const LONG: Profile = Profile {
    first_token: Duration::ZERO,
    tokens: 1000,
    gap: Duration::ZERO,
};

/// A short streamed answer, for the per-API phases and the breakdown: many samples at c=1
/// in a few seconds, still with a first token that takes a while.
pub const SHORT: Profile = Profile {
    first_token: Duration::from_millis(20),
    tokens: 10,
    gap: Duration::from_millis(2),
};

/// One phase's settings.
#[derive(Debug, Clone)]
struct Spec {
    name: &'static str,
    profile: Profile,
    phase: Phase,
}

/// Which phases run and for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    /// A short smoke run.
    pub quick: bool,
    /// Only these phases (all when empty), e.g. to profile one.
    pub phases: Vec<String>,
}

impl Plan {
    /// Whether the stage breakdown runs: in a full run, or when asked for as a phase.
    pub fn breakdown(&self) -> bool {
        self.phases.is_empty() || self.phases.iter().any(|p| p == "breakdown")
    }

    /// This plan restricted to `names`.
    pub fn within(&self, names: &[&str]) -> Self {
        let phases: Vec<String> = if self.phases.is_empty() {
            names.iter().map(|&n| n.to_owned()).collect()
        } else {
            self.phases
                .iter()
                .filter(|p| names.contains(&p.as_str()))
                .cloned()
                .collect()
        };
        Self {
            quick: self.quick,
            // A plan with no phase left runs none, not all of them.
            phases: if phases.is_empty() {
                vec!["none".to_owned()]
            } else {
                phases
            },
        }
    }

    /// The phase names, in the order they run.
    pub fn phase_names() -> Vec<&'static str> {
        Self {
            quick: true,
            phases: Vec::new(),
        }
        .specs()
        .iter()
        .map(|s| s.name)
        .chain(["breakdown"])
        .collect()
    }

    fn specs(&self) -> Vec<Spec> {
        let secs = |full: u64, quick: f64| {
            if self.quick {
                Duration::from_secs_f64(quick)
            } else {
                Duration::from_secs(full)
            }
        };
        let spec = |name, profile, users, stream, duration, warmup| Spec {
            name,
            profile,
            phase: Phase {
                users,
                stream,
                duration,
                warmup,
                once: false,
                stagger: if users > 1 {
                    profile.duration()
                } else {
                    Duration::ZERO
                },
                max_requests: MAX_REQUESTS,
                endpoint: Endpoint::Chat,
                jitter: users == 1,
                wall_clock: false,
            },
        };
        let api = |name, endpoint, users, stream, profile| {
            let mut s = spec(name, profile, users, stream, secs(8, 0.5), true);
            s.phase.endpoint = endpoint;
            s
        };
        let realistic = Profile {
            tokens: if self.quick { 20 } else { REALISTIC.tokens },
            ..REALISTIC
        };
        let crowd = Profile {
            first_token: Duration::from_millis(50),
            tokens: if self.quick { 10 } else { 50 },
            gap: Duration::from_millis(100),
        };
        let all = vec![
            spec("ttft_c1", realistic, 1, true, secs(30, 1.0), true),
            spec("ttft_c64", realistic, 64, true, secs(20, 1.0), true),
            spec("total_c1", realistic, 1, false, secs(30, 1.0), false),
            spec("total_c64", realistic, 64, false, secs(20, 1.0), false),
            spec("total_c512", realistic, 512, false, secs(20, 1.0), true),
            spec("short_jobs", INSTANT, 64, false, secs(15, 1.0), true),
            spec("long_answers", LONG, 16, true, secs(10, 1.0), false),
            Spec {
                name: "streams_1000",
                profile: crowd,
                phase: Phase {
                    users: 1000,
                    stream: true,
                    duration: Duration::ZERO,
                    warmup: false,
                    once: true,
                    // All at once: this phase is about holding 1,000 streams open together.
                    stagger: Duration::ZERO,
                    max_requests: MAX_REQUESTS,
                    endpoint: Endpoint::Chat,
                    jitter: false,
                    wall_clock: false,
                },
            },
            api("api_chat_c1", Endpoint::Chat, 1, true, SHORT),
            api("api_completions_c1", Endpoint::Completions, 1, true, SHORT),
            api("api_responses_c1", Endpoint::Responses, 1, true, SHORT),
            api("api_generate_c1", Endpoint::Generate, 1, true, SHORT),
            api("embeddings_c64", Endpoint::Embeddings, 64, false, INSTANT),
        ];
        all.into_iter()
            .filter(|s| self.phases.is_empty() || self.phases.iter().any(|p| p == s.name))
            .collect()
    }
}

fn profile_report(p: Profile) -> ProfileReport {
    ProfileReport {
        first_token_ms: p.first_token.as_secs_f64() * 1000.0,
        tokens: p.tokens,
        gap_ms: p.gap.as_secs_f64() * 1000.0,
    }
}

fn rss(processes: &[Process]) -> Vec<Option<f64>> {
    processes
        .iter()
        .map(|p| procstat::rss_mb(p.pid()))
        .collect()
}

fn cpu(watched: &[(&'static str, u32)]) -> Vec<Option<f64>> {
    watched
        .iter()
        .map(|&(_, pid)| procstat::cpu_seconds(pid))
        .collect()
}

/// Runs every phase against `target`; `processes` are the Seadragon processes behind it
/// (none for the baseline, which skips the phase that only measures Seadragon's memory).
/// CPU is also counted for `others` (the benchmark itself, the broker), for context.
pub async fn measure(
    name: &'static str,
    description: String,
    target: &Target,
    processes: &[Process],
    others: &[(&'static str, u32)],
    fake: &FakeOllama,
    plan: &Plan,
) -> ScenarioReport {
    let watched: Vec<(&'static str, u32)> = processes
        .iter()
        .map(|p| (p.role, p.pid()))
        .chain(others.iter().copied())
        .collect();
    let idle = rss(processes);
    let mut peak: Vec<Option<f64>> = vec![None; processes.len()];
    let mut phases = Vec::new();
    for spec in plan.specs() {
        if spec.phase.once && processes.is_empty() {
            continue;
        }
        crate::report::log(&format!("  {name}: {} ...", spec.name));
        spec.profile.apply(fake);
        let expected = if spec.phase.endpoint.embeds() {
            Expected {
                prompt: "hello".into(),
                text: "".into(),
                tokens: 0,
            }
        } else {
            Expected {
                prompt: spec.profile.prompt().into(),
                text: spec.profile.expected_text().into(),
                tokens: spec.profile.tokens,
            }
        };
        let cpu_before = cpu(&watched);
        let outcome = if spec.phase.once {
            let (outcome, sampled) =
                with_rss_sampling(processes, load::run(target, &spec.phase, &expected)).await;
            peak = sampled;
            outcome
        } else {
            load::run(target, &spec.phase, &expected).await
        };
        let cpu_after = cpu(&watched);
        let mut cpu_s_per_1k = BTreeMap::new();
        for ((&(role, _), before), after) in watched.iter().zip(cpu_before).zip(cpu_after) {
            if let (Some(b), Some(a)) = (before, after)
                && outcome.ok > 0
            {
                #[allow(clippy::cast_precision_loss)]
                cpu_s_per_1k.insert(role, (a - b) / outcome.ok as f64 * 1000.0);
            }
        }
        let secs = outcome.elapsed.as_secs_f64().max(1e-9);
        let mut ttft = outcome.ttft;
        let mut gaps = outcome.gaps;
        let mut totals = outcome.totals;
        #[allow(clippy::cast_precision_loss)]
        phases.push(PhaseReport {
            name: spec.name,
            users: spec.phase.users,
            stream: spec.phase.stream,
            profile: profile_report(spec.profile),
            ok: outcome.ok,
            errors: outcome.errors + outcome.connect_failures,
            missing_tokens: outcome.missing_tokens,
            elapsed_s: secs,
            requests_per_s: outcome.ok as f64 / secs,
            tokens_per_s: outcome.tokens as f64 / secs,
            ttft_ms: spec.phase.stream.then(|| Dist::thousandths(&mut ttft)),
            gap_ms: (spec.phase.stream && spec.profile.tokens > 1)
                .then(|| Dist::thousandths(&mut gaps)),
            total_ms: Dist::thousandths(&mut totals),
            cpu_s_per_1k,
            added: None,
        });
    }
    // Let connections close and buffers go back before "after load" is read.
    if !processes.is_empty() {
        tokio::time::sleep(Duration::from_secs(if plan.quick { 1 } else { 3 })).await;
    }
    let after = rss(processes);
    let processes = processes
        .iter()
        .enumerate()
        .map(|(i, p)| ProcessReport {
            role: p.role,
            rss_idle_mb: idle[i],
            rss_1000_streams_mb: peak[i],
            rss_after_mb: after[i],
        })
        .collect();
    ScenarioReport {
        name,
        description,
        skipped: None,
        errors: phases.iter().map(|p| p.errors).sum(),
        missing_tokens: phases.iter().map(|p| p.missing_tokens).sum(),
        phases,
        processes,
        breakdown: Vec::new(),
    }
}

/// Runs `load` while sampling each process's memory; returns the outcome and the peaks.
async fn with_rss_sampling<T>(
    processes: &[Process],
    load: impl Future<Output = T>,
) -> (T, Vec<Option<f64>>) {
    let (done, mut finished) = tokio::sync::oneshot::channel::<()>();
    let sampler = async {
        let mut peak: Vec<Option<f64>> = vec![None; processes.len()];
        loop {
            for (slot, now) in peak.iter_mut().zip(rss(processes)) {
                *slot = match (*slot, now) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            tokio::select! {
                () = tokio::time::sleep(RSS_EVERY) => {}
                _ = &mut finished => return peak,
            }
        }
    };
    let load = async {
        let outcome = load.await;
        let _ = done.send(());
        outcome
    };
    tokio::join!(load, sampler)
}

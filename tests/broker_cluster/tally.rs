//! The books of a fault test or a soak: every request's outcome next to how often the fakes ran
//! its prompt, summed up and checked against what a client may expect whatever breaks:
//! an accepted request completes exactly once or ends with an explicit error, none hangs,
//! and no prompt runs to its end twice.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::client::Outcome;

/// One client request: a label for messages, its prompt, and what became of it.
#[derive(Debug, Clone)]
pub struct Record {
    pub label: String,
    pub prompt: String,
    pub outcome: Outcome,
    /// Statuses of the admission refusals before the attempt that was accepted (or given up).
    pub refusals: Vec<u16>,
    /// The gateway it talked to was killed while it ran: a cut connection is then expected.
    pub gateway_died: bool,
    /// Prompts of the attempts refused before this one (each attempt has its own, so a
    /// refused attempt that ran anyway shows as a second run of the same client request).
    pub earlier_prompts: Vec<String>,
}

impl Record {
    pub fn new(label: impl Into<String>, prompt: &str, outcome: Outcome) -> Self {
        Self {
            label: label.into(),
            prompt: prompt.to_owned(),
            outcome,
            refusals: Vec::new(),
            gateway_died: false,
            earlier_prompts: Vec::new(),
        }
    }
}

/// How often the fakes started, finished (`done: true`) and saw cancelled each prompt.
#[derive(Debug, Default)]
pub struct Runs {
    pub started: HashMap<String, usize>,
    pub finished: HashMap<String, usize>,
    pub cancelled: HashMap<String, usize>,
}

impl Runs {
    fn count(map: &HashMap<String, usize>, prompt: &str) -> usize {
        map.get(prompt).copied().unwrap_or(0)
    }

    /// "started 2, finished 1, cancelled 1" for `prompt`.
    pub fn of(&self, prompt: &str) -> String {
        format!(
            "started {}, finished {}, cancelled {}",
            Self::count(&self.started, prompt),
            Self::count(&self.finished, prompt),
            Self::count(&self.cancelled, prompt)
        )
    }

    pub fn finished(&self, prompt: &str) -> usize {
        Self::count(&self.finished, prompt)
    }
}

/// Totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub requests: usize,
    pub accepted: usize,
    pub completed: usize,
    /// Accepted requests that ended with an explicit error, by reason (ids and numbers blanked).
    pub failed: BTreeMap<String, usize>,
    /// Admission refusals, retried or not, by status (0: no answer at all).
    pub refused: BTreeMap<u16, usize>,
    /// Accepted, then ended with neither the answer nor an error.
    pub lost: Vec<String>,
    /// Ended with `[DONE]` but with another answer than the fake sent.
    pub wrong: Vec<String>,
    pub hung: Vec<String>,
    /// Prompts the fakes ran to their end more than once.
    pub run_twice: Vec<String>,
}

impl Summary {
    /// Sums `records` up against what the fakes did with their prompts.
    pub fn of(records: &[Record], runs: &Runs) -> Self {
        let mut summary = Self {
            requests: records.len(),
            ..Self::default()
        };
        for record in records {
            let said = format!(
                "{} ({}): {:?}; on the fakes: {}",
                record.label,
                record.prompt,
                record.outcome,
                runs.of(&record.prompt)
            );
            match &record.outcome {
                Outcome::Completed => summary.completed += 1,
                Outcome::Refused { status, .. } => {
                    *summary.refused.entry(*status).or_default() += 1;
                }
                Outcome::Failed(reason) => *summary.failed.entry(blank(reason)).or_default() += 1,
                Outcome::Cut(_) if record.gateway_died => {
                    *summary
                        .failed
                        .entry("connection cut: its gateway was killed".to_owned())
                        .or_default() += 1;
                }
                Outcome::Cut(_) => summary.lost.push(said),
                Outcome::Wrong(_) => summary.wrong.push(said),
                Outcome::Hung(_) | Outcome::HungAtAdmission => summary.hung.push(said),
            }
            if record.outcome.accepted() {
                summary.accepted += 1;
            }
            for status in &record.refusals {
                *summary.refused.entry(*status).or_default() += 1;
            }
        }
        for record in records {
            let attempts = record.earlier_prompts.iter().chain([&record.prompt]);
            if attempts.map(|p| runs.finished(p)).sum::<usize>() > 1 {
                summary.run_twice.push(format!(
                    "{} ({}): {:?}; on the fakes: {}",
                    record.label,
                    record.prompt,
                    record.outcome,
                    runs.of(&record.prompt)
                ));
            }
        }
        summary
    }

    pub fn failed_total(&self) -> usize {
        self.failed.values().sum()
    }

    /// A report for people: totals first, then every request that broke a rule.
    pub fn report(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== {title}");
        let _ = writeln!(
            out,
            "requests {}  accepted {}  completed {}  failed with an error {}  lost {}  \
             wrong answer {}  hung {}  run twice {}",
            self.requests,
            self.accepted,
            self.completed,
            self.failed_total(),
            self.lost.len(),
            self.wrong.len(),
            self.hung.len(),
            self.run_twice.len()
        );
        for (reason, n) in &self.failed {
            let _ = writeln!(out, "  failed {n:>5}  {reason}");
        }
        for (status, n) in &self.refused {
            let _ = writeln!(out, "  refused at admission {n:>5}  status {status}");
        }
        for line in self
            .lost
            .iter()
            .chain(&self.wrong)
            .chain(&self.hung)
            .chain(&self.run_twice)
        {
            let _ = writeln!(out, "  ! {line}");
        }
        out
    }

    /// Fails the test, with the report, if any request was lost, wrong, hung or run twice.
    pub fn assert_sound(&self, title: &str, logs: &std::path::Path) {
        let report = self.report(title);
        eprintln!("{report}");
        assert!(
            self.lost.is_empty()
                && self.wrong.is_empty()
                && self.hung.is_empty()
                && self.run_twice.is_empty(),
            "{report}logs in {}",
            logs.display()
        );
    }
}

/// Writes every request's outcome to `requests.txt` in `logs`, sums them up, prints the
/// report and fails the test unless the books are sound; returns the summary.
pub fn judge(title: &str, records: &[Record], runs: &Runs, logs: &std::path::Path) -> Summary {
    let lines: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{}\t{}\t{:?}\trefused {:?}\t{}",
                r.label,
                r.prompt,
                r.outcome,
                r.refusals,
                runs.of(&r.prompt)
            )
        })
        .collect();
    std::fs::write(logs.join("requests.txt"), lines.join("\n") + "\n").unwrap();
    let summary = Summary::of(records, runs);
    summary.assert_sound(title, logs);
    summary
}

/// The reason with every word holding a digit blanked, so errors group by kind, not by job.
fn blank(reason: &str) -> String {
    reason
        .split_whitespace()
        .map(|w| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "#"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_run_twice_and_a_cut_stream_are_reported() {
        let records = [
            Record::new("a", "p1", Outcome::Completed),
            Record::new("b", "p2", Outcome::Cut("eof".to_owned())),
            Record::new("c", "p3", Outcome::Failed("job_x1 waited".to_owned())),
        ];
        let runs = Runs {
            finished: HashMap::from([("p1".to_owned(), 2), ("p3".to_owned(), 1)]),
            ..Runs::default()
        };
        let summary = Summary::of(&records, &runs);
        assert_eq!((summary.accepted, summary.completed), (3, 1));
        assert_eq!(summary.lost.len(), 1);
        assert_eq!(summary.run_twice.len(), 1);
        assert_eq!(summary.failed["# waited"], 1);
    }
}

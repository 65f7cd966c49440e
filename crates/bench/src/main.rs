//! `bench`: measures what Seadragon adds on top of Ollama, side by side in one run, against a
//! fast fake Ollama on loopback: directly (the baseline), through `seadragon serve` with the
//! embedded queue, and through a gateway and a worker over RabbitMQ. Prints one table per
//! scenario, the floors, and writes everything as JSON.
//!
//! Modules: [`backend`] (the fake Ollama, from the workspace's `fake-ollama`), [`load`] and [`parse`] (the client side),
//! [`spawn`] (Seadragon processes), [`scenario`] (the phases), [`procstat`] (CPU and memory
//! from `/proc`), [`queue_depth`] (the embedded queue in process), [`floors`] (comparison
//! with the baseline and the floors), [`report`] and [`tables`] (output).

mod backend;
mod breakdown;
mod endpoint;
mod floors;
mod load;
mod parse;
mod procstat;
mod proxy;
mod queue_depth;
mod report;
mod scenario;
mod spawn;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use fake_ollama::FakeOllama;
use load::{Api, Target};
use report::{Report, ScenarioReport, log};
use scenario::Plan;

/// The phases the relay runs: latency and relay cost; the rest are about Seadragon's queue.
const PROXY_PHASES: &[&str] = &["ttft_c1", "ttft_c64", "short_jobs", "long_answers"];

/// Dispatches timed per queue depth.
const QUEUE_OPS: usize = 2_000;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Measure Seadragon's added latency, throughput, CPU and memory against a fake Ollama"
)]
struct Args {
    /// A short smoke run (about 40 seconds; answers of 20 tokens) instead of the full benchmark.
    #[arg(long)]
    quick: bool,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// Run one scenario only (embedded and rabbitmq still run the baseline they are compared with).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// RabbitMQ for the distributed scenario; without it, a broker on 127.0.0.1:5672 is used if one answers.
    #[arg(long, env = "SEADRAGON_AMQP_URL")]
    amqp_url: Option<String>,
    /// Prefix of the benchmark's RabbitMQ names, apart from any deployment's.
    #[arg(long, default_value = "bench")]
    amqp_prefix: String,
    /// Run only this phase (repeatable), e.g. to profile it.
    #[arg(long = "phase", value_parser = clap::builder::PossibleValuesParser::new(Plan::phase_names()))]
    phases: Vec<String>,
    /// SEADRAGON_SLOTS of the processes under test: high, so nothing waits in the queue.
    #[arg(long, default_value_t = 1024)]
    slots: usize,
    /// Run as the byte-copying relay of the `proxy` scenario, to this address (internal).
    #[arg(long, hide = true)]
    proxy_to: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Baseline,
    /// A process that only copies bytes: what a second process on the path costs here.
    Proxy,
    Embedded,
    Rabbitmq,
    Queue,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(pub String);

/// Adds what was being done to an error.
pub trait Context<T> {
    /// Wraps the error with `what`.
    fn ctx(self, what: &str) -> Result<T, BenchError>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, BenchError> {
        self.map_err(|e| BenchError(format!("{what}: {e}")))
    }
}

/// Turns a missing value into an error.
pub trait ContextNone<T> {
    /// `what` when `None`.
    fn ctx_none(self, what: &str) -> Result<T, BenchError>;
}

impl<T> ContextNone<T> for Option<T> {
    fn ctx_none(self, what: &str) -> Result<T, BenchError> {
        self.ok_or_else(|| BenchError(what.to_owned()))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.proxy_to {
        Some(upstream) => proxy::relay(upstream).await,
        None => run(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(&format!("bench: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn wants(args: &Args, scenario: Only) -> bool {
    match args.only {
        None => true,
        Some(Only::Queue) => scenario == Only::Queue,
        Some(Only::Baseline) => scenario == Only::Baseline,
        Some(only) => scenario == only || scenario == Only::Baseline,
    }
}

async fn run(args: &Args) -> Result<(), BenchError> {
    // 1,000 streams need about 2,000 descriptors in this process and in each Seadragon process,
    // which inherit the limit.
    let files = rlimit::increase_nofile_limit(65_536).ctx("cannot raise the open-file limit")?;
    if files < 4096 {
        log(&format!(
            "warning: only {files} open files allowed; run `ulimit -n 65536` first"
        ));
    }
    let (cores, memory_gib) = procstat::machine();
    let plan = Plan {
        quick: args.quick,
        phases: args.phases.clone(),
    };
    let mut report = Report {
        cores,
        memory_gib,
        quick: args.quick,
        notes: notes(args),
        scenarios: Vec::new(),
        queue: None,
        floors: Vec::new(),
    };
    if args.only == Some(Only::Queue) {
        log("queue: filling the embedded queue to 100,000 jobs ...");
        report.queue = Some(queue_depth::run(QUEUE_OPS).await?);
    } else if wants(args, Only::Queue) {
        report.queue = Some(queue_in_child(args).await?);
    }
    let seadragon_wanted =
        wants(args, Only::Embedded) || wants(args, Only::Rabbitmq) || wants(args, Only::Proxy);
    if wants(args, Only::Baseline) || seadragon_wanted {
        let fake = backend::start().await.ctx("cannot start the fake Ollama")?;
        report.scenarios = scenarios(args, &plan, &fake).await?;
    }
    floors::finish(&mut report);
    for s in &report.scenarios {
        report::print(&tables::scenario(s));
    }
    if let Some(queue) = &report.queue {
        report::print(&tables::queue(queue));
    }
    report::print(&tables::floors(&report.floors));
    report::print(&format!("\n{}\n", report.notes.join("\n")));
    let json = serde_json::to_string_pretty(&report).ctx("cannot encode the results")?;
    std::fs::write(&args.out, json + "\n").ctx(&format!("cannot write {}", args.out.display()))?;
    log(&format!("results written to {}", args.out.display()));
    Ok(())
}

/// Runs the queue test in a fresh process of this binary. Its memory growth is then the
/// queue's alone, and freeing 100,000 jobs cannot stall the latency phases of this process
/// (glibc consolidates such a heap lazily, in whichever later allocation needs it).
async fn queue_in_child(args: &Args) -> Result<Vec<queue_depth::DepthResult>, BenchError> {
    let scratch = spawn::Scratch::new()?;
    let out = scratch.path().join("queue.json");
    let me = std::env::current_exe().ctx("cannot locate the bench binary")?;
    let mut command = std::process::Command::new(me);
    command
        .args(["--only", "queue", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null());
    if args.quick {
        command.arg("--quick");
    }
    let status = tokio::task::spawn_blocking(move || command.status())
        .await
        .ctx("cannot run the queue test")?
        .ctx("cannot run the queue test")?;
    if !status.success() {
        return Err(BenchError(format!("the queue test failed: {status}")));
    }
    let json = std::fs::read_to_string(&out).ctx("cannot read the queue test's results")?;
    let report: serde_json::Value =
        serde_json::from_str(&json).ctx("cannot parse the queue test's results")?;
    serde_json::from_value(report["queue"].clone()).ctx("no queue results")
}

fn notes(args: &Args) -> Vec<String> {
    vec![
        format!(
            "Load: hyper HTTP/1 client, one connection per virtual user, closed loop. It and the fake Ollama share the bench process and the machine's cores with Seadragon, so every figure includes that contention{}.",
            if args.quick { "; --quick: short phases, numbers are indicative only" } else { "" }
        ),
        "added (+p50/+p90/+p99) = Seadragon's percentile minus the baseline's for the same phase; err/miss = failed answers / missing tokens.".to_owned(),
        format!(
            "SEADRAGON_SLOTS={} and an unlimited fake: no request waits in Seadragon's queue, so added time is Seadragon's own cost.",
            args.slots
        ),
    ]
}

async fn scenarios(
    args: &Args,
    plan: &Plan,
    fake: &FakeOllama,
) -> Result<Vec<ScenarioReport>, BenchError> {
    let mut out = Vec::new();
    // The benchmark's own CPU (client and fake) is reported too: on a small machine it is
    // what Seadragon competes with.
    let bench = ("bench", std::process::id());
    log("baseline: straight to the fake Ollama ...");
    let direct = Target {
        addr: fake.addr(),
        api: Api::Ollama,
    };
    out.push(
        scenario::measure(
            "baseline",
            "client -> fake Ollama /api/chat".to_owned(),
            &direct,
            &[],
            &[bench],
            fake,
            plan,
        )
        .await,
    );
    if wants(args, Only::Proxy) {
        log("proxy: a process that only copies bytes ...");
        let relay = proxy::start(fake.addr()).await?;
        let target = Target {
            addr: relay.addr,
            api: Api::Ollama,
        };
        out.push(
            scenario::measure(
                "proxy",
                "client -> byte-copying relay process -> fake Ollama /api/chat".to_owned(),
                &target,
                std::slice::from_ref(&relay),
                &[bench],
                fake,
                &plan.within(PROXY_PHASES),
            )
            .await,
        );
    }
    if !wants(args, Only::Embedded) && !wants(args, Only::Rabbitmq) {
        return Ok(out);
    }
    let scratch = spawn::Scratch::new()?;
    let setup = spawn::Setup {
        exe: spawn::seadragon_binary()?,
        dir: scratch.path().to_owned(),
        db: String::new(),
        admin_key: format!("bench-admin-{}", seadragon::ids::random_alphanumeric(24)),
        ollama_url: fake.url(),
        slots: args.slots,
        amqp: None,
        timeline: false,
    };
    let http = reqwest::Client::new();
    if wants(args, Only::Embedded) {
        log("embedded: seadragon serve ...");
        let setup = spawn::Setup {
            db: "embedded.db".into(),
            ..setup.clone()
        };
        let (target, processes) = spawn::launch(&http, &setup, &["serve"]).await?;
        let description = "client -> seadragon serve (embedded queue) -> fake Ollama".to_owned();
        let mut report = scenario::measure(
            "embedded",
            description,
            &target,
            &processes,
            &[bench],
            fake,
            plan,
        )
        .await;
        drop(processes);
        if plan.breakdown() {
            log("  embedded: breakdown (a serve logging its stages) ...");
            let setup = spawn::Setup {
                db: "embedded-timeline.db".into(),
                timeline: true,
                ..setup.clone()
            };
            let (target, processes) = spawn::launch(&http, &setup, &["serve"]).await?;
            report.breakdown = breakdown::run(&target, &processes, fake, args.quick).await;
        }
        out.push(report);
    }
    if wants(args, Only::Rabbitmq) {
        let description =
            "client -> seadragon gateway -> RabbitMQ -> seadragon worker -> fake Ollama";
        match broker(args).await {
            None => out.push(ScenarioReport {
                name: "rabbitmq",
                description: description.to_owned(),
                skipped: Some("no SEADRAGON_AMQP_URL and no broker on 127.0.0.1:5672".into()),
                phases: Vec::new(),
                processes: Vec::new(),
                errors: 0,
                missing_tokens: 0,
                breakdown: Vec::new(),
            }),
            Some(url) => {
                log("rabbitmq: seadragon gateway + worker ...");
                let setup = spawn::Setup {
                    db: "rabbitmq.db".into(),
                    amqp: Some((url, args.amqp_prefix.clone())),
                    ..setup.clone()
                };
                let (target, processes) =
                    spawn::launch(&http, &setup, &["worker", "gateway"]).await?;
                // A broker on this machine shares its cores; count it when it can be found.
                let mut others = vec![bench];
                others.extend(procstat::local_broker().map(|pid| ("broker", pid)));
                let mut report = scenario::measure(
                    "rabbitmq",
                    description.to_owned(),
                    &target,
                    &processes,
                    &others,
                    fake,
                    plan,
                )
                .await;
                drop(processes);
                if plan.breakdown() {
                    log("  rabbitmq: breakdown (a gateway and a worker logging their stages) ...");
                    let setup = spawn::Setup {
                        db: "rabbitmq-timeline.db".into(),
                        timeline: true,
                        ..setup.clone()
                    };
                    let (target, processes) =
                        spawn::launch(&http, &setup, &["worker", "gateway"]).await?;
                    report.breakdown = breakdown::run(&target, &processes, fake, args.quick).await;
                }
                out.push(report);
            }
        }
    }
    Ok(out)
}

/// The broker to use: the given URL, or the local default when something answers there.
async fn broker(args: &Args) -> Option<String> {
    if let Some(url) = args.amqp_url.as_ref().filter(|u| !u.is_empty()) {
        return Some(url.clone());
    }
    let probe = tokio::net::TcpStream::connect(("127.0.0.1", 5672));
    match tokio::time::timeout(Duration::from_millis(500), probe).await {
        Ok(Ok(_)) => Some("amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
        _ => None,
    }
}

//! The admin dashboard in a real browser: the `seadragon` binary with a slow fake Ollama, a
//! job running and others queued, and headless Chromium driven by `tests/dashboard/check.mjs`
//! through the page as an admin would use it. Needs Debian's `chromium`, node 20+ and npm; the
//! test fails, never skips, when one is missing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::helpers::chat;
use crate::process::{Process, spawn};

const ADMIN: &str = "sk-sd-dashboard-test-admin";
/// About 12 s per job at 150 ms a token: the page sees them running and queued throughout.
const LONG: &str = "#long 80";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The browser, or a failure that says what to install.
fn chromium() -> PathBuf {
    let path =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        path.exists(),
        "the dashboard test needs Chromium at {}: install Debian's package \
         (`apt-get install chromium`) or set CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// Fails with what to install unless `program --version` runs.
async fn require(program: &str) {
    let found = tokio::process::Command::new(program)
        .arg("--version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the dashboard test needs `{program}`: install node 20+ and npm \
         (e.g. `apt-get install nodejs npm`)"
    );
}

/// Installs playwright-core (it downloads no browser) next to the script on first use.
async fn npm_ci(dir: &Path) {
    if dir.join("node_modules/playwright-core").exists() {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "`npm ci` in {} failed", dir.display());
}

async fn create_key(http: &reqwest::Client, base: &str, name: &str, tier: &str) -> String {
    let created: Value = http
        .post(format!("{base}/admin/keys"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": name, "tier": tier}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["key"].as_str().unwrap().to_owned()
}

/// A chat in the background; resolves to its status.
fn start_chat(http: &reqwest::Client, base: &str, key: &str) -> JoinHandle<u16> {
    let request = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat("llama3.2", LONG, false));
    tokio::spawn(async move { request.send().await.map_or(0, |r| r.status().as_u16()) })
}

async fn queue(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/admin/queue"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `GET /admin/queue` until `ready` holds.
async fn wait_queue(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = queue(http, base).await;
        if ready(&now) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never reached: {what}; queue: {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve(db: &str, ollama: &FakeOllama) -> Process {
    spawn(
        &["serve"],
        &[
            ("SEADRAGON_DATABASE_URL", db.to_owned()),
            ("SEADRAGON_OLLAMA_URL", ollama.url()),
            ("SEADRAGON_ADMIN_KEY", ADMIN.to_owned()),
            ("SEADRAGON_SLOTS", "1".to_owned()),
            // No aging: the free jobs stay behind the pro ones until the page clears them.
            ("SEADRAGON_AGING_SECS", "3600".to_owned()),
        ],
    )
    .await
}

#[tokio::test]
async fn the_dashboard_shows_the_queue_and_drives_the_admin_api_in_a_real_browser() {
    let browser = chromium();
    require("node").await;
    require("npm").await;
    let script_dir = manifest_dir().join("tests/dashboard");
    npm_ci(&script_dir).await;
    let screenshots = manifest_dir().join("target");
    std::fs::create_dir_all(&screenshots).unwrap();

    let ollama = FakeOllama::start(FakeConfig {
        token_delay: Duration::from_millis(150),
        ..FakeConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("seadragon.db").display());
    let server = serve(&db, &ollama).await;
    let base = server.base.clone();
    let http = reqwest::Client::new();

    let pro = create_key(&http, &base, "pro-batch", "pro").await;
    let free = create_key(&http, &base, "free-trial", "free").await;
    let user = create_key(&http, &base, "not-an-admin", "pro").await;
    // A short job first, so the page has a queue wait and tokens to show.
    let short = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&pro)
        .json(&chat("llama3.2", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 200);
    // Then one pro job running, two more and three free ones queued behind it: the free ones
    // cannot start for 36 s, however slowly the browser starts, and the chat of the key the
    // page creates (enterprise) waits 12 s at most.
    let mut pro_jobs = vec![start_chat(&http, &base, &pro)];
    wait_queue(&http, &base, "a job running", |q| {
        q["running"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    pro_jobs.extend((0..2).map(|_| start_chat(&http, &base, &pro)));
    let free_jobs: Vec<_> = (0..3).map(|_| start_chat(&http, &base, &free)).collect();
    wait_queue(&http, &base, "5 queued", |q| q["queued"] == 5).await;

    let started = Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg(script_dir.join("check.mjs"))
            .env("BASE_URL", &base)
            .env("ADMIN_KEY", ADMIN)
            .env("USER_KEY", &user)
            .env("CHROMIUM", &browser)
            .env("SCREENSHOT_DIR", &screenshots)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser check did not finish in 180 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    eprintln!(
        "browser check took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "the browser check failed (see above)"
    );

    // What the page changed, seen from the API.
    let selected = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DEFAULT="))
        .expect("the check printed no DEFAULT= line");
    let default: Value = http
        .get(format!("{base}/admin/models/default"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(default["selected"], selected, "{default}");
    assert_eq!(default["model"], selected, "{default}");
    for job in free_jobs {
        assert_eq!(job.await.unwrap(), 503, "a cleared free job was not failed");
    }
    for job in pro_jobs {
        job.abort();
    }
    for name in ["dashboard-1280.png", "dashboard-390.png"] {
        assert!(screenshots.join(name).exists(), "no screenshot {name}");
    }
    drop(server);
}

//! Runs the real `seadragon` binary as a child process and finds the address it listens on.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `seadragon` process; killed when dropped.
pub struct Process {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Lines it printed on stdout before it listened (the admin key, when created).
    pub stdout: Vec<String>,
}

/// Starts `seadragon <args>` with exactly `env` (plus `RUST_LOG`) and waits until it listens.
pub async fn spawn(args: &[&str], env: &[(&str, String)]) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seadragon"));
    command
        .args(args)
        .env_clear()
        .env("RUST_LOG", crate::logs::rust_log())
        .env("SEADRAGON_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let label = args.first().copied().unwrap_or("seadragon").to_owned();
    let name = format!("{label}-{}", child.id().unwrap_or_default());
    let mut kept = crate::logs::open(&name, &crate::logs::secrets_of(env));
    let mut keep = move |line: &str| {
        eprintln!("[{label}] {line}");
        // One write per line, unbuffered: the process may be killed at any moment.
        if let Some(file) = kept.as_mut() {
            let _ = writeln!(file, "{line}");
        }
    };
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            keep(&line);
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("seadragon {name} exited before listening");
    })
    .await
    .unwrap();
    // Keep draining the log so the process never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            keep(&line);
        }
    });
    // Anything printed on stdout comes before the server listens; read what is there.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await
    {
        stdout.push(line);
    }
    Process {
        child,
        base,
        stdout,
    }
}

impl Process {
    /// SIGKILL: no shutdown code runs, as when a machine dies.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap()
    }
}

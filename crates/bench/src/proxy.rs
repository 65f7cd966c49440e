//! The floor for any gateway in its own process: a relay that only copies bytes between the
//! client and the fake Ollama, with the same runtime as `seadragon` (tokio, one worker thread
//! per core) and the same socket options (TCP_NODELAY). What it adds over the baseline is the
//! price of a second process on the path on this machine (two more loopback hops and the
//! wake-ups of a process that sleeps between requests), which no gateway can avoid; what
//! Seadragon adds beyond it is its own.
//!
//! It runs as this very binary started with `--proxy-to ADDR`, so it is a separate process
//! like `seadragon serve`, and prints the address it listens on as its first line.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use std::io::{BufRead, BufReader};

use tokio::net::{TcpListener, TcpStream};

use crate::spawn::Process;
use crate::{BenchError, Context, ContextNone};

/// How long the relay may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the relay to `upstream` until the process is killed.
pub async fn relay(upstream: SocketAddr) -> Result<(), BenchError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .ctx("the relay cannot listen")?;
    let addr = listener.local_addr().ctx("the relay has no address")?;
    #[allow(clippy::print_stdout)]
    {
        println!("listening {addr}");
    }
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (mut client, mut server) = (client, server);
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}

/// Starts this binary as a relay to `upstream` and waits until it listens.
pub async fn start(upstream: SocketAddr) -> Result<Process, BenchError> {
    let me = std::env::current_exe().ctx("cannot locate the bench binary")?;
    let mut child = Command::new(me)
        .arg("--proxy-to")
        .arg(upstream.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .ctx("cannot start the relay")?;
    let stdout = child.stdout.take().ctx_none("no stdout pipe")?;
    let process = Process::new(child, "proxy");
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(START_TIMEOUT, first_line)
        .await
        .ctx("the relay did not start listening in time")?
        .ctx("cannot read the relay's address")?
        .ctx("cannot read the relay's address")?;
    let line = line.trim_end();
    let addr = line
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .ctx_none(&format!("the relay printed {line:?}, not its address"))?;
    Ok(process.listening_on(addr))
}

//! Accepts TCP connections and serves the router on each over HTTP/1.1, with graceful
//! shutdown: once told to stop it accepts nothing more, lets every request in flight finish,
//! closes idle keep-alive connections, and returns when the last connection has closed.
//!
//! Why not `axum::serve`: it serves through hyper-util's "auto" builder, which first reads a
//! connection's opening bytes to tell HTTP/1 from HTTP/2 and hands them back through a rewind
//! buffer. hyper's first read then returns only those bytes, so its second read finds the
//! 8 KB read buffer short by their length and doubles it to 16 KB, kept for the life of the
//! connection (heaptrack, 1,000 open streams: 16 MB of the process's 58 MB above idle).
//! Seadragon serves no HTTP/2 (no client of an OpenAI or Ollama API speaks cleartext h2), so
//! connections go straight to hyper's HTTP/1 server.
//!
//! A connection has [`HEADER_TIMEOUT`] to send each request head, counted from the moment the
//! server starts waiting for it. That closes connections that trickle a head byte by byte to
//! hold a socket and a task (slowloris), and it also closes a keep-alive connection left idle
//! that long between requests, as Go's and nginx's idle timeouts do. Clients' own pools let
//! idle connections go sooner (httpx and Node after 5 s) or notice the close before reuse.

use std::io;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// After an accept error that is not about one connection (out of file descriptors), the
/// listener rests this long instead of spinning on the same error.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// How long a connection may take to send a request head, or stay idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` is cancelled and every connection is closed.
/// `header_timeout` is [`HEADER_TIMEOUT`] outside tests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    header_timeout: Duration,
) {
    // A router whose routes still wait for their state builds each route again for every
    // request (about 15 KB and its CPU); `with_state` builds them once, and each connection
    // gets a cheap clone.
    let router = router.with_state(());
    // Every connection task holds a receiver; the sender's `closed` is the last one ending.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let tcp = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    pause_after(&e).await;
                    continue;
                }
            },
        };
        let open = open_rx.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(tcp, router, shutdown, header_timeout).await;
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

async fn serve_connection(
    tcp: TcpStream,
    router: Router,
    shutdown: CancellationToken,
    header_timeout: Duration,
) {
    // Without TCP_NODELAY, Nagle holds each small SSE frame until the previous one is
    // acknowledged, and delayed ACKs turn that into 40 ms stalls between tokens.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let service = TowerToHyperService::new(router);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            // Finishes the request in flight (if any), then closes instead of keeping alive.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        // A client that leaves mid-request or sends garbage: its own business, not an error
        // of the server's.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn pause_after(error: &io::Error) {
    let per_connection = matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    );
    if !per_connection {
        tracing::error!(error = %error, "accepting a connection failed; pausing");
        tokio::time::sleep(ACCEPT_PAUSE).await;
    }
}

#[cfg(test)]
#[path = "http_server_tests.rs"]
mod tests;

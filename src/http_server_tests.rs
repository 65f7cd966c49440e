//! The server's connection handling over real loopback sockets: the request-head timeout
//! closes trickling and idle connections, and never cuts a request or an answer in progress.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_millis(300);

/// A server with one plain route and one that streams for longer than [`TIMEOUT`].
async fn start() -> (SocketAddr, CancellationToken) {
    let slow_stream = || async {
        let chunks = futures_util::stream::unfold(0, |n| async move {
            if n == 5 {
                return None;
            }
            tokio::time::sleep(TIMEOUT / 2).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from(format!("chunk{n};"))),
                n + 1,
            ))
        });
        Body::from_stream(chunks)
    };
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/slow", get(slow_stream));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(super::serve(listener, router, shutdown.clone(), TIMEOUT));
    (addr, shutdown)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

/// Reads one response whose body is `body`, or panics after 5 s.
async fn read_response(tcp: &mut TcpStream, body: &str) -> String {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains(body) {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout_at(deadline.into(), tcp.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed before the answer: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(seen).unwrap()
}

/// Waits for the server to close `tcp` and says how long that took.
async fn closed_after(tcp: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("the server closes the connection within 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "expected a close, got {:?}", &buf[..n]);
    start.elapsed()
}

#[tokio::test]
async fn a_head_that_never_ends_is_closed_after_the_timeout() {
    let (addr, _shutdown) = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let waited = closed_after(&mut tcp).await;
    assert!(
        waited >= TIMEOUT - Duration::from_millis(50),
        "closed early: {waited:?}"
    );
}

#[tokio::test]
async fn a_head_trickled_within_the_timeout_is_answered() {
    let (addr, _shutdown) = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for piece in GET.chunks(8) {
        tcp.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = read_response(&mut tcp, "ok").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_serves_again_then_closes_after_the_timeout() {
    let (addr, _shutdown) = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(GET).await.unwrap();
    read_response(&mut tcp, "ok").await;
    // Idle for less than the timeout: the connection still serves.
    tokio::time::sleep(TIMEOUT / 2).await;
    tcp.write_all(GET).await.unwrap();
    read_response(&mut tcp, "ok").await;
    let waited = closed_after(&mut tcp).await;
    assert!(
        waited >= TIMEOUT - Duration::from_millis(50),
        "closed early: {waited:?}"
    );
}

#[tokio::test]
async fn an_answer_streaming_longer_than_the_timeout_is_not_cut() {
    let (addr, _shutdown) = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut tcp, "chunk4;").await;
    for n in 0..5 {
        assert!(answer.contains(&format!("chunk{n};")), "{answer}");
    }
}

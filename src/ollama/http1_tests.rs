//! The lean client and the NDJSON reader against a scripted server on loopback: bodies cut
//! anywhere across reads, each way a body can end, keep-alive reuse, and broken answers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::OllamaError;
use super::http1::StreamClient;
use super::ndjson::{ChatStream, MAX_LINE_BYTES};

/// One scripted answer: written piece by piece (each its own TCP segment), then the
/// connection is kept for the next request or closed.
struct Reply {
    pieces: Vec<Vec<u8>>,
    close: bool,
}

impl Reply {
    fn new(pieces: Vec<Vec<u8>>) -> Self {
        Self {
            pieces,
            close: false,
        }
    }

    fn closing(mut self) -> Self {
        self.close = true;
        self
    }
}

/// A server answering each request with the next reply; counts the connections it accepted.
async fn server(replies: Vec<Reply>) -> (StreamClient, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url =
        Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let replies = Arc::clone(&replies);
            tokio::spawn(async move {
                let mut request = Vec::new();
                loop {
                    // Only the head matters here; the bodies sent are a few bytes.
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut buf = [0u8; 4096];
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    request.clear();
                    let Some(reply) = replies.lock().expect("replies").pop_front() else {
                        return;
                    };
                    for piece in reply.pieces {
                        if tcp.write_all(&piece).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    if reply.close {
                        return;
                    }
                }
            });
        }
    });
    (StreamClient::new(&url).expect("client"), accepted)
}

const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n";
const LINE: &str = r#"{"model":"m","created_at":"2025-05-05T00:00:00Z","message":{"role":"assistant","content":"hi"},"done":false}"#;

fn chunked(head: &str, body: &[u8], piece: usize) -> Vec<Vec<u8>> {
    let mut wire = format!("{head}transfer-encoding: chunked\r\n\r\n").into_bytes();
    for chunk in body.chunks(50) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire.chunks(piece).map(<[u8]>::to_vec).collect()
}

async fn lines(client: &StreamClient) -> Result<Vec<String>, OllamaError> {
    let answer = client.post("/api/chat", b"{}").await?;
    assert_eq!(answer.status, 200);
    let mut stream = ChatStream::new(answer.body);
    let mut contents = Vec::new();
    while let Some(chunk) = stream.next().await {
        contents.push(chunk?.message.content);
    }
    Ok(contents)
}

#[tokio::test]
async fn chunked_lines_cut_anywhere_come_out_whole_and_the_connection_is_reused() {
    let body = format!("{LINE}\n\n{LINE}\n{LINE}");
    let replies = [7, 1, 33, 1000]
        .iter()
        .map(|&piece| Reply::new(chunked(HEAD, body.as_bytes(), piece)))
        .collect();
    let (client, accepted) = server(replies).await;
    for _ in 0..4 {
        assert_eq!(lines(&client).await.expect("lines"), ["hi", "hi", "hi"]);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one kept-alive connection"
    );
}

#[tokio::test]
async fn a_counted_body_and_a_body_up_to_the_close_are_read_whole() {
    let body = format!("{LINE}\n{LINE}\n");
    let counted = format!("{HEAD}content-length: {}\r\n\r\n{body}", body.len());
    let to_close = format!("HTTP/1.1 200 OK\r\n\r\n{body}");
    let (client, accepted) = server(vec![
        Reply::new(vec![counted.into_bytes()]),
        Reply::new(vec![to_close.into_bytes()]).closing(),
        Reply::new(chunked(HEAD, body.as_bytes(), 64)),
    ])
    .await;
    assert_eq!(lines(&client).await.expect("counted"), ["hi", "hi"]);
    assert_eq!(lines(&client).await.expect("to close"), ["hi", "hi"]);
    assert_eq!(lines(&client).await.expect("after"), ["hi", "hi"]);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a closed body's connection is not reused"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced_without_an_error() {
    let body = format!("{LINE}\n");
    let (client, accepted) = server(vec![
        Reply::new(chunked(HEAD, body.as_bytes(), 1000)).closing(),
        Reply::new(chunked(HEAD, body.as_bytes(), 1000)),
    ])
    .await;
    assert_eq!(lines(&client).await.expect("first"), ["hi"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(lines(&client).await.expect("second"), ["hi"]);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_left_unread_closes_its_connection() {
    let body = format!("{LINE}\n{LINE}\n");
    let (client, accepted) = server(vec![
        Reply::new(chunked(HEAD, body.as_bytes(), 1000)),
        Reply::new(chunked(HEAD, body.as_bytes(), 1000)),
    ])
    .await;
    let answer = client.post("/api/chat", b"{}").await.expect("answer");
    let mut stream = ChatStream::new(answer.body);
    assert!(stream.next().await.is_some());
    drop(stream);
    assert_eq!(lines(&client).await.expect("second"), ["hi", "hi"]);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_error_status_keeps_its_body() {
    let error = r#"{"error":"model 'x' not found"}"#;
    let wire = format!(
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{error}",
        error.len()
    );
    let (client, _) = server(vec![Reply::new(vec![wire.into_bytes()])]).await;
    let mut answer = client.post("/api/chat", b"{}").await.expect("answer");
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.body.read_to_end(1024).await.expect("body"),
        error.as_bytes()
    );
}

#[tokio::test]
async fn broken_answers_are_errors_not_hangs() {
    let cut = format!(
        "{HEAD}transfer-encoding: chunked\r\n\r\n{:x}\r\n{LINE}",
        LINE.len() + 10
    );
    let bad_size = format!("{HEAD}transfer-encoding: chunked\r\n\r\nzz\r\n");
    let (client, _) = server(vec![
        Reply::new(vec![cut.into_bytes()]).closing(),
        Reply::new(vec![bad_size.into_bytes()]).closing(),
        Reply::new(vec![b"SPDY/9 nonsense\r\n\r\n".to_vec()]).closing(),
        Reply::new(vec![]).closing(),
    ])
    .await;
    let cut_off = lines(&client).await.expect_err("cut mid-chunk");
    assert!(
        cut_off.to_string().contains("broke mid-answer"),
        "{cut_off}"
    );
    let bad = lines(&client).await.expect_err("bad chunk size");
    assert!(bad.to_string().contains("chunk size"), "{bad}");
    let head = client.post("/api/chat", b"{}").await.expect_err("bad head");
    assert!(matches!(head, OllamaError::Protocol(_)), "{head}");
    let closed = client.post("/api/chat", b"{}").await.expect_err("closed");
    assert!(
        matches!(closed, OllamaError::Unreachable { .. }),
        "{closed}"
    );
}

#[tokio::test]
async fn a_line_past_the_limit_fails_the_stream_and_ends_it() {
    let body = vec![b'x'; MAX_LINE_BYTES + 64 * 1024];
    let (client, _) = server(vec![Reply::new(chunked(HEAD, &body, 256 * 1024))]).await;
    let answer = client.post("/api/chat", b"{}").await.expect("answer");
    let mut stream = ChatStream::new(answer.body);
    let error = stream.next().await.expect("an item").expect_err("too long");
    assert!(error.to_string().contains("exceeded"), "{error}");
    assert!(stream.next().await.is_none());
}

#[test]
fn targets_resolve_below_the_base_url_and_only_http_is_taken() {
    let client = |base: &str| StreamClient::new(&Url::parse(base).expect("url"));
    let target = |base: &str| client(base).expect("client").target("api/chat");
    assert_eq!(target("http://127.0.0.1:11434"), "/api/chat");
    assert_eq!(target("http://h/ollama/"), "/ollama/api/chat");
    assert_eq!(target("http://[::1]:11434/"), "/api/chat");
    assert!(client("https://h/").is_err());
}

#[tokio::test]
async fn a_stream_finished_at_its_last_object_hands_its_connection_back() {
    let done = r#"{"model":"m","created_at":"2025-05-05T00:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}"#;
    let body = format!("{LINE}\n{done}\n");
    // The closing empty chunk comes in a segment of its own, after the last object.
    let mut pieces = chunked(HEAD, body.as_bytes(), 100_000);
    let end = pieces[0].len() - 5;
    let terminator = pieces[0].split_off(end);
    pieces.push(terminator);
    let (client, accepted) = server(vec![
        Reply::new(pieces),
        Reply::new(chunked(HEAD, body.as_bytes(), 1000)),
    ])
    .await;
    let answer = client.post("/api/chat", b"{}").await.expect("answer");
    let mut stream = ChatStream::new(answer.body);
    while !stream.next().await.expect("an object").expect("valid").done {}
    stream.finish().await;
    assert_eq!(lines(&client).await.expect("second"), ["hi", ""]);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection was reused"
    );
}

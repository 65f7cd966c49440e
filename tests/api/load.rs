//! A bounded loopback load: 500 concurrent streaming clients across the three tiers, more than
//! the slots can serve at once, all answered completely, none lost or hung.

use std::time::Duration;

use fake_ollama::FakeConfig;
use futures_util::future::join_all;

use crate::helpers::{Options, chat, data_json, spawn_with, sse_frames, tier};

#[tokio::test]
async fn five_hundred_concurrent_streams_across_tiers_all_complete() {
    let app = spawn_with(Options {
        slots: 32,
        fake: FakeConfig {
            parallel: 32,
            max_queue: 1024,
            token_delay: Duration::from_millis(2),
            ..FakeConfig::default()
        },
        // Limits high enough that only the slots hold clients back.
        tiers: vec![tier("free", 1), tier("pro", 2), tier("enterprise", 3)],
        ..Options::default()
    })
    .await;
    let keys = [
        app.key("free").await,
        app.key("pro").await,
        app.key("enterprise").await,
    ];
    let expected = fake_ollama::numbered_text(20);
    let clients = (0..500).map(|i| {
        let (app, key, expected) = (&app, &keys[i % 3], &expected);
        async move {
            let response = app
                .post_chat(
                    key,
                    &chat("llama3.2", &format!("#long 20 client {i}"), true),
                )
                .await;
            assert_eq!(response.status(), 200, "client {i}");
            let frames = sse_frames(response).await;
            assert_eq!(
                frames.last().map(String::as_str),
                Some("data: [DONE]"),
                "client {i}"
            );
            let text: String = data_json(&frames)
                .iter()
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect();
            assert_eq!(&text, expected, "client {i} lost tokens");
        }
    });
    tokio::time::timeout(Duration::from_secs(120), join_all(clients))
        .await
        .expect("some streams hung");
    assert_eq!(app.ollama.finished().len(), 500);
    assert!(app.ollama.max_concurrent() <= 32);
    let snapshot = app.app.queue_snapshot();
    assert_eq!((snapshot.queued(), snapshot.running), (0, 0));
}

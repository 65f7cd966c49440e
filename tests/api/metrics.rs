//! `GET /metrics`: Prometheus text that follows what requests did.

use seadragon::config::TierConfig;

use crate::helpers::{ADMIN_KEY, Options, chat, spawn_with, tier};

#[tokio::test]
async fn metrics_count_requests_refusals_tokens_and_latencies_per_tier() {
    let app = spawn_with(Options {
        tiers: vec![
            TierConfig {
                requests_per_minute: 1,
                ..tier("free", 1)
            },
            tier("pro", 2),
        ],
        ..Options::default()
    })
    .await;
    let (free, pro) = (app.key("free").await, app.key("pro").await);
    let streamed = app.post_chat(&pro, &chat("llama3.2", "hi", true)).await;
    assert!(streamed.text().await.unwrap().ends_with(
        "[DONE]

"
    ));
    assert_eq!(
        app.post_chat(&free, &chat("llama3.2", "hi", false))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_chat(&free, &chat("llama3.2", "hi", false))
            .await
            .status(),
        429
    );

    let response = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"seadragon_requests_total{tier="pro",outcome="completed"} 1"#,
        r#"seadragon_requests_total{tier="free",outcome="completed"} 1"#,
        r#"seadragon_refusals_total{tier="free",reason="rate"} 1"#,
        r#"seadragon_tokens_total{tier="pro",model="llama3.2:latest",direction="completion"} 5"#,
        r#"seadragon_time_to_first_token_seconds_count{tier="pro"} 1"#,
        r#"seadragon_queue_wait_seconds_count{tier="free"} 1"#,
        r#"seadragon_generation_tokens_per_second_count{tier="pro"} 1"#,
        "seadragon_jobs_running 0",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    assert!(text.contains("seadragon_worker_slots{worker="), "{text}");
    assert!(text.ends_with("# EOF\n"));
}

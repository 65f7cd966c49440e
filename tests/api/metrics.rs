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

#[tokio::test]
async fn a_metrics_key_reads_metrics_and_nothing_else() {
    let app = crate::helpers::spawn_app().await;
    let response = app
        .admin(
            reqwest::Method::POST,
            "/admin/keys",
            Some(serde_json::json!({"name": "prometheus", "tier": "free", "role": "metrics"})),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["role"], "metrics");
    let scraper = created["key"].as_str().unwrap().to_owned();
    let get = |path: &str, key: &str| {
        app.http
            .get(app.url(path))
            .bearer_auth(key.to_owned())
            .send()
    };
    let metrics = get("/metrics", &scraper).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("# EOF"));
    // Neither the admin API nor the OpenAI routes.
    assert_eq!(get("/admin/keys", &scraper).await.unwrap().status(), 403);
    let chat = app
        .post_chat(&scraper, &chat("llama3.2", "hi", false))
        .await;
    let error = crate::helpers::openai_error(chat, 403).await;
    assert_eq!(error["code"], "insufficient_permissions");
    // And a user key still cannot read the metrics.
    let user = app.key("pro").await;
    assert_eq!(get("/metrics", &user).await.unwrap().status(), 403);
    assert_eq!(get("/metrics", ADMIN_KEY).await.unwrap().status(), 200);
}

//! Gateways and workers as separate `seadragon` processes sharing one real RabbitMQ: priority
//! across processes, rescues under a flood, streams, and processes dying mid-work.

use std::sync::Arc;
use std::time::Duration;

use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, assert_ends_with_error};
use crate::helpers::{chat, data_json, sse_frames};

async fn all_ok(handles: Vec<JoinHandle<(u16, Value)>>) {
    for h in handles {
        let (status, body) = h.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn jobs_from_two_gateways_start_by_priority_across_two_workers() {
    let c = Cluster::new();
    let (a, b) = (
        FakeOllama::start(FakeConfig::default()).await,
        FakeOllama::start(FakeConfig::default()).await,
    );
    let _wa = c.worker(&a).await;
    let _wb = c.worker(&b).await;
    let g1 = c.gateway("3600").await;
    let g2 = c.gateway("3600").await;
    c.wait_ready(&g1).await;
    c.wait_ready(&g2).await;
    let (free, pro, ent) = (
        c.key(&g1, "free").await,
        c.key(&g1, "pro").await,
        c.key(&g1, "enterprise").await,
    );
    let mut handles = vec![c.send(&g1, &ent, "#hold"), c.send(&g2, &ent, "#hold")];
    a.wait_started(1).await;
    b.wait_started(1).await;
    for (i, (key, prompt)) in [
        (&free, "f1"),
        (&pro, "p1"),
        (&ent, "e1"),
        (&pro, "p2"),
        (&free, "f2"),
        (&ent, "e2"),
    ]
    .into_iter()
    .enumerate()
    {
        let gateway = if i % 2 == 0 { &g1 } else { &g2 };
        handles.push(c.send(gateway, key, prompt));
        // Each gateway reports the whole system's queue: its own jobs and its peers'.
        c.wait_queued(gateway, i as u64 + 1).await;
    }
    // Only worker A frees up: everything queued flows through it, in priority order.
    a.release();
    a.wait_started(7).await;
    assert_eq!(a.started(), ["#hold", "e1", "e2", "p1", "p2", "f1", "f2"]);
    b.release();
    all_ok(handles).await;
}

#[tokio::test]
async fn a_free_job_is_not_starved_by_an_enterprise_flood_and_no_job_runs_twice() {
    let c = Cluster::new();
    let fake = FakeOllama::start(FakeConfig::default()).await;
    let _w = c.worker(&fake).await;
    let g = Arc::new(c.gateway("0.2").await);
    c.wait_ready(&g).await;
    let (free, ent) = (c.key(&g, "free").await, c.key(&g, "enterprise").await);
    let mut handles = vec![c.send(&g, &ent, "#hold")];
    fake.wait_started(1).await;
    handles.push(c.send(&g, &free, "free"));
    c.wait_queued(&g, 1).await;
    for i in 0..20 {
        handles.push(c.send(&g, &ent, &format!("e{i}")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if i == 9 {
            fake.release();
        }
    }
    all_ok(handles).await;
    // Workers call Ollama only once a claim is granted, so the losing copy of the rescued job
    // never reaches it: every job starts exactly once, in the order the fake ran them.
    let started = fake.started();
    assert_eq!(started.len(), 22, "{started:?}");
    let mut unique = started.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), started.len(), "a job ran twice: {started:?}");
    let position = |p: &str| started.iter().position(|s| s == p).unwrap();
    // The free job starved after 0.2 s and was rescued above every tier; enterprise jobs
    // submitted well after that never overtake it.
    for late in 9..20 {
        assert!(
            position("free") < position(&format!("e{late}")),
            "{started:?}"
        );
    }
}

#[tokio::test]
async fn a_long_stream_comes_back_complete_and_in_order() {
    let c = Cluster::new();
    let fake = FakeOllama::start(FakeConfig::default()).await;
    let _w = c.worker(&fake).await;
    let g = c.gateway("10").await;
    c.wait_ready(&g).await;
    let key = c.key(&g, "pro").await;
    let mut body = chat("llama3.2", "#long 300", true);
    body["stream_options"] = json!({"include_usage": true});
    let response = c
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let frames = sse_frames(response).await;
    assert_eq!(frames.last().unwrap(), "data: [DONE]");
    let text: String = data_json(&frames)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let expected = fake_ollama::numbered_text(300);
    assert_eq!(text, expected);
}

#[tokio::test]
async fn a_worker_killed_before_its_first_token_has_its_job_run_elsewhere() {
    let c = Cluster::new();
    let slow = FakeOllama::start(FakeConfig {
        first_token_delay: Duration::from_secs(30),
        ..FakeConfig::default()
    })
    .await;
    let mut doomed = c.worker(&slow).await;
    let g = c.gateway("10").await;
    c.wait_ready(&g).await;
    let key = c.key(&g, "pro").await;
    let pending = c.send(&g, &key, "survive");
    slow.wait_started(1).await;
    doomed.kill().await;
    let healthy = FakeOllama::start(FakeConfig::default()).await;
    let _rescuer = c.worker(&healthy).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the fake Ollama."
    );
    assert_eq!(healthy.started(), ["survive"]);
}

#[tokio::test]
async fn a_worker_killed_after_its_first_token_ends_the_stream_with_an_error() {
    let c = Cluster::new();
    let fake = FakeOllama::start(FakeConfig::default()).await;
    let mut doomed = c.worker(&fake).await;
    let g = c.gateway("10").await;
    c.wait_ready(&g).await;
    let key = c.key(&g, "pro").await;
    let response = c
        .stream_until(&g, &key, "#hold", "\"content\":\"Hello\"")
        .await;
    doomed.kill().await;
    assert_ends_with_error(response, "its worker died").await;
}

#[tokio::test]
async fn a_killed_gateway_gets_none_of_its_queued_jobs_run_and_its_streams_stop() {
    let c = Cluster::new();
    let fake = FakeOllama::start(FakeConfig::default()).await;
    let _w = c.worker(&fake).await;
    let mut doomed = c.gateway("3600").await;
    let other = c.gateway("3600").await;
    c.wait_ready(&doomed).await;
    c.wait_ready(&other).await;
    let (pro, free) = (c.key(&doomed, "pro").await, c.key(&doomed, "free").await);
    let mut stream = c
        .http
        .post(format!("{}/v1/chat/completions", doomed.base))
        .bearer_auth(&pro)
        .json(&chat("llama3.2", "#slow", true))
        .send()
        .await
        .unwrap();
    stream.chunk().await.unwrap();
    // Long answers: a worker that starts Ollama while its claim is unanswered must drop the
    // request before it could finish.
    let _q1 = c.send(&doomed, &pro, "#slow q1");
    let _q2 = c.send(&doomed, &pro, "#slow q2");
    c.wait_queued(&doomed, 2).await;
    doomed.kill().await;
    tokio::time::timeout(Duration::from_secs(15), fake.wait_cancelled(1))
        .await
        .expect("the worker kept generating for a dead gateway");
    // A lower-priority job from a live gateway runs only after q1 and q2 were considered.
    let (status, _) = c.send(&other, &free, "after").await.unwrap();
    assert_eq!(status, 200);
    // q1 and q2 may have reached Ollama while their claims were in flight, but were dropped
    // when no gateway granted them: only "after" ran to the end.
    assert_eq!(fake.finished(), ["after"]);
    assert!(fake.cancelled().contains(&"#slow".to_owned()));
}

#[tokio::test]
async fn every_gateway_reports_the_whole_queue() {
    let c = Cluster::new();
    let fake = FakeOllama::start(FakeConfig::default()).await;
    let _w = c.worker(&fake).await;
    let g1 = c.gateway("3600").await;
    let g2 = c.gateway("3600").await;
    c.wait_ready(&g1).await;
    c.wait_ready(&g2).await;
    let key = c.key(&g1, "pro").await;
    let blocker = c.send(&g1, &key, "#hold");
    fake.wait_started(1).await;
    // The job g1 runs shows in g2's admin view too, once g1 has shared its state.
    let running = c
        .wait_admin_queue(&g2, "g1's running job", |q| {
            q["running"].as_array().is_some_and(|r| r.len() == 1)
        })
        .await;
    let job = &running["running"][0];
    assert_eq!(
        (
            job["tier"].as_str(),
            job["key_name"].as_str(),
            job["model"].as_str()
        ),
        (Some("pro"), Some("pro"), Some("llama3.2:latest")),
        "{running}"
    );
    // So does the worker running it, with its slots, though it never ran a job for g2.
    let workers = &running["workers"];
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{running}");
    assert_eq!(
        (
            workers[0]["name"].as_str(),
            workers[0]["slots"].as_u64(),
            workers[0]["running"].as_u64()
        ),
        (job["worker"].as_str(), Some(1), Some(1)),
        "{running}"
    );
    let at_g1 = c.send(&g1, &key, "at g1");
    let at_g2 = c.send(&g2, &key, "at g2");
    c.wait_queued(&g1, 2).await;
    c.wait_queued(&g2, 2).await;
    fake.release();
    all_ok(vec![blocker, at_g1, at_g2]).await;
}

#[tokio::test]
async fn a_job_whose_client_left_while_queued_never_reaches_ollama() {
    let c = Cluster::new();
    let fake = FakeOllama::start(FakeConfig::default()).await;
    let _w = c.worker(&fake).await;
    let g = c.gateway("3600").await;
    c.wait_ready(&g).await;
    let key = c.key(&g, "pro").await;
    let blocker = c.send(&g, &key, "#hold");
    fake.wait_started(1).await;
    let victim = c.send(&g, &key, "victim");
    c.wait_queued(&g, 1).await;
    victim.abort();
    c.wait_queued(&g, 0).await;
    fake.release();
    all_ok(vec![blocker, c.send(&g, &key, "after")]).await;
    // The victim's message was still on the broker; the worker took it, was denied its claim
    // and never called Ollama.
    assert_eq!(fake.started(), ["#hold", "after"]);
    assert_eq!(fake.chat_requests().len(), 2);
}

#[tokio::test]
async fn jobs_go_only_to_workers_whose_ollama_has_their_model() {
    use fake_ollama::FakeModel;
    let c = Cluster::new();
    let only = |name: &str| FakeConfig {
        models: vec![FakeModel::new(name, &["completion", "tools"])],
        ..FakeConfig::default()
    };
    let (llama, qwen) = (
        FakeOllama::start(only("llama3.2:latest")).await,
        FakeOllama::start(only("qwen3:8b")).await,
    );
    let _wl = c.worker(&llama).await;
    let _wq = c.worker(&qwen).await;
    let g = c.gateway("3600").await;
    c.wait_models(&g, "both workers' models", |m: &Value| {
        let listed = m.to_string();
        listed.contains("qwen3:8b") && listed.contains("llama3.2:latest")
    })
    .await;
    let key = c.key(&g, "pro").await;
    let mut handles = Vec::new();
    for i in 0..6 {
        for model in ["llama3.2", "qwen3:8b"] {
            let body = json!({"model": model, "messages": [{"role": "user", "content": format!("{model} {i}")}]});
            let (http, url, key) = (
                c.http.clone(),
                format!("{}/v1/chat/completions", g.base),
                key.clone(),
            );
            handles.push(tokio::spawn(async move {
                let response = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }));
        }
    }
    all_ok(handles).await;
    // Each Ollama saw its own model's jobs only: none got a job for a model it lacks.
    assert!(
        llama.started().iter().all(|p| p.starts_with("llama3.2 ")),
        "{:?}",
        llama.started()
    );
    assert!(
        qwen.started().iter().all(|p| p.starts_with("qwen3:8b ")),
        "{:?}",
        qwen.started()
    );
    assert_eq!((llama.started().len(), qwen.started().len()), (6, 6));
}

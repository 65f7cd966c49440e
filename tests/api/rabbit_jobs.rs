//! RabbitMQ job queues, grants and pulls against a real broker, with a "rogue" worker speaking
//! the wire protocol by hand where a real worker would behave: one that takes a grant and
//! never starts, then sends events under its lapsed grant.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};

use seadragon::openai::Delta;
use seadragon::queue::rabbitmq::{RabbitGateway, RabbitWorker};
use seadragon::queue::{JobEvent, JobQueue, WorkQueue, WorkerAnnouncement};

use crate::cluster::{Namespace, amqp_url, rabbit_config};
use crate::queue_contract::{job, policy, take, take_within, wait_connected};

/// A connected gateway under `prefix`.
async fn gateway(prefix: &str) -> Arc<RabbitGateway> {
    let gateway = Arc::new(RabbitGateway::start(
        rabbit_config(prefix, "gw"),
        policy(Duration::from_secs(3600)),
    ));
    wait_connected("gateway", || gateway.status().connected).await;
    gateway
}

/// A connected one-slot worker under `prefix`, taking the jobs of `models`.
async fn worker(prefix: &str, models: &[&str]) -> Arc<RabbitWorker> {
    let worker = Arc::new(RabbitWorker::start(rabbit_config(prefix, "wk"), 1));
    wait_connected("worker", || worker.status().connected).await;
    worker
        .announce(&WorkerAnnouncement {
            worker: "wk".into(),
            slots: 1,
            models: models.iter().map(|m| json!({ "name": m })).collect(),
            ollama_ok: true,
            loaded: Vec::new(),
        })
        .await;
    worker
}

/// A worker that claims by hand: it pulls a job, claims it and then does what the test says.
struct Rogue {
    _connection: Connection,
    channel: Channel,
    control: String,
    orders: lapin::Consumer,
}

impl Rogue {
    async fn connect(prefix: &str) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let control = format!("{prefix}.control.rogue.s0");
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(control.as_str().into(), exclusive, FieldTable::default())
            .await
            .unwrap();
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let orders = channel
            .basic_consume(
                control.as_str().into(),
                "".into(),
                no_ack,
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            _connection: connection,
            channel,
            control,
            orders,
        }
    }

    /// Pulls the first job from `queue` (the gateway declares it with its first publish),
    /// leaving it unacknowledged.
    async fn pull(&self, queue: &str) -> Value {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let got = self
                    .channel
                    .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                    .await;
                if let Ok(Some(message)) = got {
                    return serde_json::from_slice(&message.delivery.data).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the rogue never got the job")
    }

    async fn send(&self, queue: &str, message: &Value) {
        self.channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(message).unwrap(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The next order on the control queue, as JSON (liveness pings skipped).
    async fn order(&mut self) -> Value {
        loop {
            let delivery = tokio::time::timeout(Duration::from_secs(20), self.orders.next())
                .await
                .expect("no order reached the rogue")
                .unwrap()
                .unwrap();
            let order: Value = serde_json::from_slice(&delivery.data).unwrap();
            if order["kind"] != "ping" {
                return order;
            }
        }
    }
}

/// A worker took a grant and went silent (its start report lost, or it hung): after the lease
/// the gateway tells it to stop and a real worker runs the job; what the silent one sends
/// later under its lapsed grant never reaches the client.
#[tokio::test]
async fn a_grant_never_started_lapses_and_another_worker_runs_the_job() {
    let namespace = Namespace::new(amqp_url());
    let prefix = namespace.prefix.clone();
    let gateway = gateway(&prefix).await;
    let mut rogue = Rogue::connect(&prefix).await;
    let mut ticket = gateway.submit(job("j", "pro", 2)).await.unwrap();

    let message = rogue.pull(&format!("{prefix}.jobs.v3.m.p2")).await;
    let reply_to = message["reply_to"].as_str().unwrap().to_owned();
    let claim = json!({
        "kind": "claim", "job_id": "j", "copy": message["copy"], "redelivered": false,
        "worker": "rogue", "slots": 1, "control": rogue.control,
    });
    rogue.send(&reply_to, &claim).await;
    let grant = rogue.order().await;
    assert_eq!(grant["kind"], "grant", "{grant}");
    let lapsed = grant["lease"].clone();

    // No start report. A real worker comes up; the job must reach it once the lease lapses.
    let worker = worker(&prefix, &["m"]).await;
    let work: Arc<dyn WorkQueue> = Arc::clone(&worker) as Arc<dyn WorkQueue>;
    // The lease is 10 s from the grant: wait well past it (`take`'s own 10 s is a race).
    let mut running = take_within(&work, Duration::from_secs(30)).await;
    let cancel = rogue.order().await;
    assert_eq!(
        (cancel["kind"].as_str(), cancel["job_id"].as_str()),
        (Some("cancel"), Some("j")),
        "{cancel}"
    );

    // The silent worker wakes up and sends an answer under its lapsed grant.
    let stale = JobEvent::Delta(Delta {
        first: true,
        content: Some("stale".into()),
        ..Delta::default()
    });
    let events = json!({"kind": "events", "job_id": "j", "lease": lapsed, "events": [stale]});
    rogue.send(&reply_to, &events).await;
    let late_start =
        json!({"kind": "running", "job_id": "j", "lease": lapsed, "control": rogue.control});
    rogue.send(&reply_to, &late_start).await;
    assert_eq!(
        rogue.order().await["kind"],
        "cancel",
        "a stale start must be stopped"
    );

    running
        .send(JobEvent::Delta(Delta {
            first: true,
            content: Some("fresh".into()),
            ..Delta::default()
        }))
        .await
        .unwrap();
    running
        .send(JobEvent::Finished {
            finish_reason: "stop".into(),
            usage: seadragon::openai::Usage::new(1, 1),
        })
        .await
        .unwrap();
    running.finish().await;
    let mut contents = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), ticket.next_event())
        .await
        .expect("the answer never completed")
    {
        match event {
            JobEvent::Delta(d) => contents.extend(d.content),
            JobEvent::Finished { .. } => break,
            JobEvent::Failed(f) => panic!("the job failed: {f:?}"),
            _ => {}
        }
    }
    assert_eq!(contents, ["fresh"]);
    gateway.close();
    worker.close();
}

/// A worker serving two models takes the highest level first whichever model it is for.
#[tokio::test]
async fn a_worker_pulls_the_highest_level_across_its_models() {
    let namespace = Namespace::new(amqp_url());
    let prefix = namespace.prefix.clone();
    let gateway = gateway(&prefix).await;
    let worker = worker(&prefix, &["m", "n"]).await;
    let work: Arc<dyn WorkQueue> = Arc::clone(&worker) as Arc<dyn WorkQueue>;
    let _blocker = gateway.submit(job("blocker", "pro", 2)).await.unwrap();
    let running = take(&work).await;
    let mut tickets = Vec::new();
    for (id, model, level) in [
        ("m1", "m", 1),
        ("n3", "n", 3),
        ("m2", "m", 2),
        ("n0", "n", 0),
    ] {
        let mut j = job(id, "pro", level);
        j.model = model.into();
        tickets.push(gateway.submit(j).await.unwrap());
    }
    running.finish().await;
    let mut order = Vec::new();
    for _ in 0..4 {
        let a = take(&work).await;
        order.push(a.job().id.clone());
        a.finish().await;
    }
    assert_eq!(order, ["n3", "m2", "m1", "n0"]);
    gateway.close();
    worker.close();
}

/// A job queue that vanished (unused past its expiry, or deleted by an operator) while the
/// gateway believed it declared comes back with the next publish instead of failing it.
#[tokio::test]
async fn a_vanished_job_queue_is_declared_again_on_publish() {
    let namespace = Namespace::new(amqp_url());
    let prefix = namespace.prefix.clone();
    let gateway = gateway(&prefix).await;
    let _first = gateway.submit(job("first", "pro", 2)).await.unwrap();
    let rogue = Rogue::connect(&prefix).await;
    let queue = format!("{prefix}.jobs.v3.m.p2");
    rogue
        .channel
        .queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _second = gateway
        .submit(job("second", "pro", 2))
        .await
        .expect("a publish to a vanished job queue must declare it again");
    let message = rogue.pull(&queue).await;
    assert_eq!(message["job"]["id"], "second", "{message}");
    gateway.close();
}

//! What RabbitMQ alone costs per job, with no gateway, worker or Ollama: the ceiling any job
//! path over that broker can reach on this machine.
//!
//! Each cycle is what a job costs the broker at least: a persistent, mandatory, confirmed
//! publish into a job queue, taking it (`basic.get`, or a consumer's delivery) and its
//! acknowledgement. Publishers and takers use separate connections, as gateways and workers
//! do. Layouts: a quorum queue (what Seadragon uses) and a classic priority queue (what it
//! used before, lost with its node).
//!
//! `cargo run --release -p bench --bin broker_floor -- AMQP_URL [CONCURRENCY] [SECONDS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug)]
enum Layout {
    Quorum,
    ClassicPriority,
}

#[derive(Clone, Copy, Debug)]
enum Take {
    /// One `basic.get` per job, as a Seadragon worker's slot does.
    Get,
    /// A consumer with a prefetch of the concurrency.
    Consume,
}

// The table is this tool's output.
#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: broker_floor AMQP_URL [CONCURRENCY] [SECONDS]")?;
    let concurrency: usize = args.next().map_or(Ok(64), |c| c.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |s| s.parse())?;
    println!(
        "cycles/s: jobs acknowledged; p50/p99: publish to ack (Get), the confirmed publish (Consume)"
    );
    println!("layout            take     c  cycles/s   p50 ms   p99 ms");
    for layout in [Layout::Quorum, Layout::ClassicPriority] {
        for take in [Take::Get, Take::Consume] {
            for c in [1, concurrency] {
                let run = measure(&url, layout, take, c, Duration::from_secs(seconds)).await?;
                println!(
                    "{:<17} {:<7} {:>3} {:>9.0} {:>8.3} {:>8.3}",
                    format!("{layout:?}"),
                    format!("{take:?}"),
                    c,
                    run.per_second,
                    run.p50_ms,
                    run.p99_ms
                );
            }
        }
    }
    Ok(())
}

struct Run {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn measure(
    url: &str,
    layout: Layout,
    take: Take,
    concurrency: usize,
    length: Duration,
) -> Result<Run, Error> {
    let publisher = Connection::connect(url, ConnectionProperties::default()).await?;
    let taker = Connection::connect(url, ConnectionProperties::default()).await?;
    let queue = format!("broker-floor.{layout:?}.{take:?}.{concurrency}");
    let admin = taker.create_channel().await?;
    let _ = admin
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let admin = taker.create_channel().await?;
    admin
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments(layout),
        )
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut cycles = Vec::new();
    let consumer = match take {
        Take::Consume => Some(consume(&taker, &queue, concurrency, Arc::clone(&done)).await?),
        Take::Get => None,
    };
    for _ in 0..concurrency {
        let channel = publisher.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let getter = match take {
            Take::Get => Some(taker.create_channel().await?),
            Take::Consume => None,
        };
        let (queue, stop, done) = (queue.clone(), Arc::clone(&stop), Arc::clone(&done));
        cycles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                publish(&channel, &queue).await?;
                if let Some(getter) = &getter {
                    get_and_ack(getter, &queue).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(started.elapsed());
            }
            Ok::<_, Error>(latencies)
        }));
    }
    tokio::time::sleep(length).await;
    let counted = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for cycle in cycles {
        latencies.extend(cycle.await??);
    }
    drop(consumer);
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let _ = admin
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = publisher.close(200, "done".into()).await;
    let _ = taker.close(200, "done".into()).await;
    Ok(Run {
        per_second: counted as f64 / length.as_secs_f64(),
        // With a consumer, the cycle timed is the confirmed publish only.
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    })
}

fn arguments(layout: Layout) -> FieldTable {
    let mut args = FieldTable::default();
    match layout {
        Layout::Quorum => args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        ),
        Layout::ClassicPriority => {
            args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(4))
        }
    };
    args
}

async fn publish(channel: &Channel, queue: &str) -> Result<(), Error> {
    let confirm = channel
        .basic_publish(
            ShortString::from(""),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &[b'x'; 600],
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?
        .await?;
    if confirm.is_nack() {
        return Err("nacked".into());
    }
    Ok(())
}

async fn get_and_ack(channel: &Channel, queue: &str) -> Result<(), Error> {
    loop {
        if let Some(got) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await?
        {
            got.delivery.ack(BasicAckOptions::default()).await?;
            return Ok(());
        }
    }
}

async fn consume(
    connection: &Connection,
    queue: &str,
    prefetch: usize,
    done: Arc<AtomicU64>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(
            u16::try_from(prefetch).unwrap_or(u16::MAX),
            BasicQosOptions::default(),
        )
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "floor".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(tokio::spawn(async move {
        while let Some(Ok(delivery)) = deliveries.next().await {
            if delivery.ack(BasicAckOptions::default()).await.is_ok() {
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    }))
}

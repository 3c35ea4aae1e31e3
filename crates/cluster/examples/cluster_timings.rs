//! Measures the cluster layer against a throw-away `redis-server` on loopback: call latency,
//! message delivery latency, Redis' load from heartbeats, and how long an outage, a restart
//! and a node's death take to show. Production timing (heartbeat 1 s, lease 3 s) unless a
//! section says otherwise. Prints a table; asserts nothing.

use std::future::Future;
use std::time::{Duration, Instant};

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Cluster, ClusterConfig, RelayInfo, Timing, Topic};

const SAMPLES: usize = 2000;

fn production(redis: &RedisServer, node: &str) -> ClusterConfig {
    let mut config = config(redis, node);
    config.timing = Timing::default();
    config
}

/// Runs `call` `SAMPLES` times in sequence; prints p50 / p99 / max.
async fn latency<F, Fut, T, E>(name: &str, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let mut took = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        if let Err(error) = call().await {
            println!("{name:<44} failed: {error:?}");
            return;
        }
        took.push(start.elapsed());
    }
    print_spread(name, &mut took);
}

fn print_spread(name: &str, took: &mut [Duration]) {
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<44} p50 {:>7.1} µs   p99 {:>7.1} µs   max {:>8.1} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6,
    );
}

/// Redis' CPU seconds (user + system) and commands processed so far.
async fn redis_usage(redis: &RedisServer) -> anyhow::Result<(f64, u64)> {
    let mut connection = redis.connection().await;
    let info: String = redis::cmd("INFO")
        .arg("all")
        .query_async(&mut connection)
        .await?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok((
        field("used_cpu_user") + field("used_cpu_sys"),
        field("total_commands_processed") as u64,
    ))
}

async fn until(mut done: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done().await {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(mut redis) = RedisServer::start() else {
        return Ok(());
    };
    println!("directo-cluster timings, redis-server on loopback, one process");
    println!();

    // Calls on a cluster of 10 nodes, 50 relays of one stream.
    let mut nodes = Vec::new();
    for i in 0..10 {
        nodes.push(Cluster::start(production(&redis, &format!("node-{i}"))).await?);
    }
    let origin = nodes[0].clone();
    origin.claim_origin("launch").await?;
    let mut relays = Vec::new();
    for i in 0..50 {
        let relay = Cluster::start(production(&redis, &format!("relay-{i}"))).await?;
        let upstream = if i < 8 {
            "node-0".to_owned()
        } else {
            format!("relay-{}", i / 8 - 1)
        };
        relay
            .register_relay("launch", RelayInfo { upstream, depth: 1 })
            .await?;
        relays.push(relay);
    }
    latency("claim_origin (held, renew)", || {
        origin.claim_origin("launch")
    })
    .await;
    latency("origin_of", || nodes[1].origin_of("launch")).await;
    latency("nodes() of 60", || nodes[1].nodes()).await;
    latency("relays_of() with 50 relays", || {
        nodes[1].relays_of("launch")
    })
    .await;
    latency("publish (no subscriber)", || {
        origin.publish(&Topic::Admin, b"x")
    })
    .await;

    // Publish on one node to a subscriber on another, one message at a time.
    let mut inbox = nodes[1].subscribe(Topic::Node("node-1".to_owned())).await?;
    let mut took = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        origin
            .publish(&Topic::Node("node-1".to_owned()), b"ping")
            .await?;
        inbox
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("inbox closed"))?;
        took.push(start.elapsed());
    }
    print_spread("publish -> delivered on another node", &mut took);
    drop(relays);
    drop(inbox);
    for node in nodes.drain(..) {
        node.shutdown().await?;
    }
    println!();

    // Redis' load from heartbeats: 20 nodes, each holding 50 claims, 50 relays, 50 counts.
    let mut holders = Vec::new();
    for i in 0..20 {
        let node = Cluster::start(production(&redis, &format!("busy-{i}"))).await?;
        for s in 0..50 {
            node.claim_origin(&format!("s{i}-{s}")).await?;
            node.register_relay(
                &format!("r{s}"),
                RelayInfo {
                    upstream: "busy-0".into(),
                    depth: 1,
                },
            )
            .await?;
            node.set_stream_viewers(&format!("r{s}"), 10)?;
        }
        holders.push(node);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_before, commands_before) = redis_usage(&redis).await?;
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let (cpu_after, commands_after) = redis_usage(&redis).await?;
    println!(
        "heartbeats of 20 nodes x 150 entries (3000 entries): redis CPU {:.2} % of a core, {:.0} commands/s counting those inside scripts",
        (cpu_after - cpu_before) / window.as_secs_f64() * 100.0,
        (commands_after - commands_before) as f64 / window.as_secs_f64(),
    );

    // Redis restarts empty: time until every node and every claim is back.
    redis.restart();
    let back = until(async || {
        let Ok(listed) = holders[0].nodes().await else {
            return false;
        };
        let Ok(streams) = holders[0].streams().await else {
            return false;
        };
        listed.len() == 20 && streams.len() == 1000
    })
    .await;
    println!(
        "empty restart -> 20 nodes and 1000 claims back: {:.0} ms",
        back.as_secs_f64() * 1e3
    );

    // A node dies (handles dropped): time until the others stop listing it.
    let dead = holders.pop().ok_or_else(|| anyhow::anyhow!("no node"))?;
    drop(dead);
    let gone = until(async || {
        holders[0]
            .nodes()
            .await
            .is_ok_and(|listed| listed.len() == 19)
    })
    .await;
    println!(
        "node dropped -> gone from nodes(): {:.0} ms (lease 3000 ms)",
        gone.as_secs_f64() * 1e3
    );

    // Outages: refused (killed) and hung (paused).
    redis.kill();
    let mut took = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let _ = holders[0].nodes().await;
        took.push(start.elapsed());
    }
    print_spread("Unavailable answer, Redis killed", &mut took);
    redis.restart();
    until(async || holders[0].nodes().await.is_ok()).await;
    redis.pause();
    let mut took = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let _ = holders[0].nodes().await;
        took.push(start.elapsed());
    }
    print_spread("Unavailable answer, Redis hung (timeout 1 s)", &mut took);
    redis.resume();
    Ok(())
}

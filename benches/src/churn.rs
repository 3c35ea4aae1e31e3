//! Churn, for soak runs (`directo-load --churn`, `benches/soak.sh`): streams that come and go
//! and viewers who join and leave, for as long as asked. `slots` streams are live at a time,
//! each under a fresh name (`{prefix}-{slot}-{n}`) for `stream_life`, then ended (WHIP
//! `DELETE`) and replaced, the slots staggered so publishers come and go evenly. Viewers join
//! the live streams round-robin at `joins_per_s`, each for about `watch` (±50 %), with a chat
//! channel on which it says one thing ([`crate::churn_viewer`]).
//!
//! It counts what the clients saw; what the server holds (memory, open files, threads) is
//! the caller's to read.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::{Client, Url};
use tokio::task::JoinSet;

use crate::churn_viewer::{ChurnViewerCounters, run_churn_viewer};
use crate::error::{LoadError, Result};
use crate::load::http_client;
use crate::publisher::{PublisherContext, run_whip};
use crate::stamp::SendTimes;
use crate::synth::VideoShape;

/// How long a publisher may take to go live.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// What to churn, and for how long.
#[derive(Debug, Clone)]
pub struct ChurnConfig {
    /// Directo's HTTP base URL.
    pub server: Url,
    /// Stream names start with this.
    pub prefix: String,
    /// The publish key, if the server wants one.
    pub key: Option<String>,
    /// How long the churn lasts.
    pub duration: Duration,
    /// Streams live at a time.
    pub slots: usize,
    /// How long each stream stays live.
    pub stream_life: Duration,
    /// Viewers joining per second, over all live streams.
    pub joins_per_s: f64,
    /// How long a viewer watches, on average.
    pub watch: Duration,
    /// The publishers' video.
    pub shape: VideoShape,
    /// The loopback address every peer binds to.
    pub bind_ip: IpAddr,
}

/// What the churn did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ChurnReport {
    /// Streams that went live.
    pub streams_started: u64,
    /// Streams ended by their publisher.
    pub streams_ended: u64,
    /// Publishers that could not go live.
    pub publish_failures: u64,
    /// Viewers started.
    pub viewers: u64,
    /// Viewers whose connection came up.
    pub viewers_connected: u64,
    /// Viewers that could not join, or whose connection failed.
    pub viewer_failures: u64,
    /// Chat messages the viewers sent.
    pub chat_sent: u64,
    /// Chat messages the viewers received.
    pub chat_received: u64,
    /// `stream.status` messages the viewers received.
    pub statuses_received: u64,
}

impl fmt::Display for ChurnReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "streams: {} started, {} ended, {} failed to go live",
            self.streams_started, self.streams_ended, self.publish_failures
        )?;
        writeln!(
            f,
            "viewers: {} started, {} connected, {} failed",
            self.viewers, self.viewers_connected, self.viewer_failures
        )?;
        writeln!(
            f,
            "chat: {} sent, {} received; {} stream statuses received",
            self.chat_sent, self.chat_received, self.statuses_received
        )
    }
}

#[derive(Default)]
struct StreamCounters {
    started: AtomicU64,
    ended: AtomicU64,
    failed: AtomicU64,
}

/// Runs the churn (inside a multi-threaded tokio runtime) and reports what it did.
pub async fn run(config: ChurnConfig) -> Result<ChurnReport> {
    let http = http_client()?;
    let live: Arc<Mutex<Vec<String>>> = Arc::default();
    let streams = Arc::new(StreamCounters::default());
    let start = Instant::now();
    let end = start + config.duration;

    let mut slots = JoinSet::new();
    for slot in 0..config.slots.max(1) {
        // Staggered, so one stream ends (and another starts) every `stream_life / slots`.
        let offset = config
            .stream_life
            .mul_f64(slot as f64 / config.slots.max(1) as f64);
        slots.spawn(run_slot(
            slot,
            config.clone(),
            http.clone(),
            Arc::clone(&live),
            Arc::clone(&streams),
            (start + offset, end),
        ));
    }

    let viewers = Arc::new(ChurnViewerCounters::default());
    let mut watching = JoinSet::new();
    let mut started = 0u64;
    let interval = Duration::from_secs_f64(1.0 / config.joins_per_s.max(0.01));
    let mut next = start;
    loop {
        next += interval;
        if next >= end {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        // Reap finished viewers as we go, so a long soak does not keep every handle.
        while watching.try_join_next().is_some() {}
        let stream = {
            let live = lock(&live);
            if live.is_empty() {
                continue;
            }
            live[started as usize % live.len()].clone()
        };
        let stay = config.watch.mul_f64(rand::rng().random_range(0.5..1.5));
        let until = (Instant::now() + stay).min(end);
        let endpoint = join_url(&config.server, &format!("whep/{stream}"))?;
        watching.spawn(run_churn_viewer(
            http.clone(),
            endpoint,
            config.bind_ip,
            format!("hello from soak viewer {started}"),
            until,
            Arc::clone(&viewers),
        ));
        started += 1;
    }
    while watching.join_next().await.is_some() {}
    while slots.join_next().await.is_some() {}

    Ok(ChurnReport {
        streams_started: streams.started.load(Ordering::Relaxed),
        streams_ended: streams.ended.load(Ordering::Relaxed),
        publish_failures: streams.failed.load(Ordering::Relaxed),
        viewers: started,
        viewers_connected: viewers.connected.load(Ordering::Relaxed),
        viewer_failures: viewers.failed.load(Ordering::Relaxed),
        chat_sent: viewers.chat_sent.load(Ordering::Relaxed),
        chat_received: viewers.chat_received.load(Ordering::Relaxed),
        statuses_received: viewers.statuses_received.load(Ordering::Relaxed),
    })
}

/// One slot: a stream live for `stream_life`, ended, and the next one under a new name,
/// from `window.0` until `window.1`.
async fn run_slot(
    slot: usize,
    config: ChurnConfig,
    http: Client,
    live: Arc<Mutex<Vec<String>>>,
    counters: Arc<StreamCounters>,
    window: (Instant, Instant),
) {
    let (begin, end) = window;
    tokio::time::sleep_until(begin.into()).await;
    let mut generation = 0u64;
    // A stream that could not live half its life before the end is not started.
    while Instant::now() + config.stream_life / 2 < end {
        let name = format!("{}-{slot}-{generation}", config.prefix);
        generation += 1;
        match live_stream(&name, &config, &http, &live, end).await {
            Ok(()) => {
                counters.started.fetch_add(1, Ordering::Relaxed);
                counters.ended.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "a churn publisher failed");
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Publishes `name` until its life is over (or the churn ends), listed in `live` meanwhile.
async fn live_stream(
    name: &str,
    config: &ChurnConfig,
    http: &Client,
    live: &Mutex<Vec<String>>,
    end: Instant,
) -> Result<()> {
    let went_live = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let context = PublisherContext {
        shape: config.shape,
        times: Arc::new(SendTimes::new()),
        live: Arc::clone(&went_live),
        stop: Arc::clone(&stop),
        bind_ip: config.bind_ip,
        simulcast: false,
    };
    let whip = join_url(&config.server, &format!("whip/{name}"))?;
    let publisher = tokio::spawn(run_whip(http.clone(), whip, config.key.clone(), context));
    let asked = Instant::now();
    while !went_live.load(Ordering::Acquire) {
        if publisher.is_finished() || asked.elapsed() > PUBLISH_TIMEOUT {
            stop.store(true, Ordering::Relaxed);
            return match publisher.await {
                Ok(Err(e)) => Err(e),
                _ => Err(LoadError::Timeout("a churn publisher to go live")),
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock(live).push(name.to_owned());
    let until = (Instant::now() + config.stream_life).min(end);
    tokio::time::sleep_until(until.into()).await;
    lock(live).retain(|s| s != name);
    // The publisher's loop sees this, closes its connection and DELETEs its session.
    stop.store(true, Ordering::Relaxed);
    match publisher.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(LoadError::Protocol(format!("publisher task: {e}"))),
    }
}

fn lock(live: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    // A panicked holder leaves a usable list.
    live.lock().unwrap_or_else(|e| e.into_inner())
}

fn join_url(base: &Url, path: &str) -> Result<Url> {
    base.join(path)
        .map_err(|e| LoadError::Protocol(format!("bad URL {base} + {path}: {e}")))
}

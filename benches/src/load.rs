//! One load run: a publisher, then viewers ramped up at a steady rate and spread over a few
//! worker threads (one current-thread runtime each, every viewer a single future on it), a
//! measurement window once all have joined, and a [`Report`].
//!
//! Timeline: the publisher connects and goes live; the server's resident memory is read;
//! viewers join at `ramp_per_s`; once the last has joined and a short settling time has
//! passed, the server's CPU time and the viewers' packet count are read at both ends of the
//! window, which lasts until the viewers leave, `seconds` after the last one joined.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::{Client, Url};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::{LoadError, Result};
use crate::proc_stats::{ProcSample, thread_cpu};
use crate::publisher::{PublisherContext, PublisherStats, RtpTarget, run_plain_rtp, run_whip};
use crate::report::{PollFigures, Report, RunFacts, ServerUsage};
use crate::stamp::SendTimes;
use crate::synth::VideoShape;
use crate::viewer::{Join, SharedCounters, ViewerContext, ViewerStats, run_viewer};

/// How long the publisher may take to go live.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// Which server to load, and how to reach it.
#[derive(Debug, Clone)]
pub enum Target {
    /// Directo: publish over WHIP, watch over WHEP.
    Directo {
        /// HTTP base URL, e.g. `http://127.0.0.1:8080`.
        server: Url,
        /// The stream name.
        stream: String,
        /// The publish key (bearer token), if the server wants one.
        key: Option<String>,
    },
    /// Janus: feed a Streaming mountpoint plain RTP, watch it through the HTTP API.
    Janus {
        /// The HTTP API base, e.g. `http://127.0.0.1:8088/janus`.
        api: Url,
        /// The mountpoint id.
        mountpoint: u64,
        /// Where the mountpoint takes RTP.
        rtp: RtpTarget,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server under load.
    pub target: Target,
    /// Viewers to start.
    pub viewers: usize,
    /// Seconds to keep every viewer watching after the last one joined.
    pub seconds: f64,
    /// Viewers started per second.
    pub ramp_per_s: f64,
    /// The publisher's video.
    pub shape: VideoShape,
    /// The server's pid, for CPU and memory figures.
    pub server_pid: Option<u32>,
    /// Worker threads carrying the viewers.
    pub threads: usize,
    /// Keep per-viewer rows in the report.
    pub per_viewer: bool,
    /// The loopback address every synthetic peer binds to.
    pub bind_ip: IpAddr,
    /// Chat-only `/ws` members flooding the stream's chat during the run (Directo only).
    pub chat_flood: usize,
    /// Directo only: viewers watch on these nodes in turn instead of the publisher's
    /// (a cluster's edges); empty: on the publisher's.
    pub viewer_servers: Vec<Url>,
    /// The publisher sends three simulcast layers (Directo only).
    pub simulcast: bool,
    /// This share of the viewers (0–1) watch over a link narrowed to `constrained_kbps`.
    pub constrained_share: f64,
    /// The narrow link's rate, kbit/s.
    pub constrained_kbps: u32,
    /// Constrained viewers bind their own addresses instead of `bind_ip`, the first this one,
    /// the next the address after it (127.0.0.2, 127.0.0.3, ...), and the link to each is
    /// narrowed outside the generator (e.g. a `tc` class per address on `lo`): they drop
    /// nothing themselves. `None`: they bind `bind_ip` and narrow their link with a token
    /// bucket of `constrained_kbps`.
    pub constrained_bind_ip: Option<IpAddr>,
    /// Viewers negotiate transport-wide congestion control and send its feedback, as
    /// browsers do.
    pub transport_cc: bool,
    /// Clients polling `GET /api/streams/{stream}` during the run (Directo only), each every
    /// `poll_interval`.
    pub api_pollers: usize,
    /// How often each poller asks.
    pub poll_interval: Duration,
}

/// A worker thread with a current-thread runtime, alive until dropped.
struct Worker {
    handle: Handle,
    http: Client,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Worker {
    fn start(index: usize) -> Result<Worker> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name(format!("viewers-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                let _ = runtime.block_on(stopped);
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| LoadError::Protocol("worker thread died at start".into()))??;
        Ok(Worker {
            handle,
            http: http_client()?,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP client for a local server: no proxy, bounded waits.
pub fn http_client() -> Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?)
}

fn join_url(base: &Url, path: &str) -> Result<Url> {
    base.join(path)
        .map_err(|e| LoadError::Protocol(format!("bad URL {base} + {path}: {e}")))
}

/// Runs one load test (call it inside a tokio runtime; the publisher runs on it).
pub async fn run(config: LoadConfig) -> Result<Report> {
    let times = Arc::new(SendTimes::new());
    let shared = Arc::new(SharedCounters::default());
    let live = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let context = PublisherContext {
        shape: config.shape,
        times: Arc::clone(&times),
        live: Arc::clone(&live),
        stop: Arc::clone(&stop),
        bind_ip: config.bind_ip,
        simulcast: config.simulcast,
    };
    let http = http_client()?;
    let (publisher, joins, target_name) = match &config.target {
        Target::Directo {
            server,
            stream,
            key,
        } => {
            let whip = join_url(server, &format!("whip/{stream}"))?;
            let mut joins = Vec::new();
            for node in config
                .viewer_servers
                .iter()
                .chain(config.viewer_servers.is_empty().then_some(server))
            {
                joins.push(Join::Whep(join_url(node, &format!("whep/{stream}"))?));
            }
            let task = tokio::spawn(run_whip(http.clone(), whip, key.clone(), context));
            (task, joins, "directo")
        }
        Target::Janus {
            api,
            mountpoint,
            rtp,
        } => {
            let task = tokio::spawn(run_plain_rtp(*rtp, context));
            let join = Join::Janus {
                api: api.clone(),
                mountpoint: *mountpoint,
            };
            (task, vec![join], "janus")
        }
    };

    let publishing = Instant::now();
    while !live.load(Ordering::Acquire) {
        if publisher.is_finished() || publishing.elapsed() > PUBLISH_TIMEOUT {
            stop.store(true, Ordering::Relaxed);
            return match publisher.await {
                Ok(Err(e)) => Err(e),
                _ => Err(LoadError::Timeout("the publisher to go live")),
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the first frames reach the server so the stream is live before viewers ask.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let flood = match (&config.target, config.chat_flood) {
        (Target::Directo { server, stream, .. }, members) if members > 0 => {
            let ws = join_url(server, "ws")?
                .to_string()
                .replacen("http", "ws", 1);
            Some(crate::chat_flood::start(
                ws,
                stream.clone(),
                members,
                Arc::clone(&stop),
            ))
        }
        _ => None,
    };
    let workers = (0..config.threads.max(1))
        .map(Worker::start)
        .collect::<Result<Vec<_>>>()?;
    let polls = match &config.target {
        Target::Directo { server, stream, .. } if config.api_pollers > 0 => {
            let url = join_url(server, &format!("api/streams/{stream}"))?;
            let runtimes: Vec<_> = workers
                .iter()
                .map(|w| (w.handle.clone(), w.http.clone()))
                .collect();
            let counts = crate::api_poll::start(
                url,
                config.api_pollers,
                config.poll_interval,
                &runtimes,
                Arc::clone(&stop),
            );
            Some((counts, Instant::now()))
        }
        _ => None,
    };
    let media_cpu = || {
        config
            .server_pid
            .and_then(|pid| thread_cpu(pid, "directo-media"))
    };
    let before = config.server_pid.and_then(ProcSample::read);
    let ramp = Duration::from_secs_f64(config.viewers as f64 / config.ramp_per_s.max(0.001));
    let start = Instant::now();
    let measure = Duration::from_secs_f64(config.seconds.max(1.0));
    let until = start + ramp + measure;
    let mut viewers = Vec::with_capacity(config.viewers);
    let mut constrained_count: u32 = 0;
    for index in 0..config.viewers {
        let at = start + Duration::from_secs_f64(index as f64 / config.ramp_per_s.max(0.001));
        tokio::time::sleep_until(at.into()).await;
        let worker = &workers[index % workers.len()];
        let constrained = is_constrained(index, config.constrained_share);
        let bind_ip = match config.constrained_bind_ip {
            Some(first) if constrained => {
                constrained_count += 1;
                nth_address(first, constrained_count - 1)?
            }
            _ => config.bind_ip,
        };
        let viewer = ViewerContext {
            join: joins[index % joins.len()].clone(),
            http: worker.http.clone(),
            times: Arc::clone(&times),
            shared: Arc::clone(&shared),
            bind_ip,
            link_kbps: constrained.then_some(config.constrained_kbps),
            link_shaped_outside: config.constrained_bind_ip.is_some(),
            transport_cc: config.transport_cc,
        };
        viewers.push(worker.handle.spawn(run_viewer(viewer, until)));
    }

    // Settle after the ramp, then measure until just before the viewers leave.
    let settle = (measure / 4).min(Duration::from_secs(2));
    let window_start = start + ramp + settle;
    let window_end = until - (measure / 10).min(Duration::from_millis(250));
    tokio::time::sleep_until(window_start.into()).await;
    let (cpu_start, packets_start, media_start) = (
        config.server_pid.and_then(ProcSample::read),
        shared.packets.load(Ordering::Relaxed),
        media_cpu(),
    );
    let generator_start = ProcSample::read(std::process::id());
    let opened = Instant::now();
    tokio::time::sleep_until(window_end.into()).await;
    let (cpu_end, packets_end, media_end) = (
        config.server_pid.and_then(ProcSample::read),
        shared.packets.load(Ordering::Relaxed),
        media_cpu(),
    );
    let generator_cpu = ProcSample::read(std::process::id())
        .zip(generator_start)
        .map(|(end, start)| end.cpu.saturating_sub(start.cpu));
    let window = opened.elapsed();

    let mut stats: Vec<ViewerStats> = Vec::with_capacity(viewers.len());
    for viewer in viewers {
        match viewer.await {
            Ok(viewer) => stats.push(viewer),
            Err(e) => stats.push(ViewerStats {
                error: Some(format!("viewer task: {e}")),
                ..Default::default()
            }),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let api_polls = polls.map(|(counts, started)| PollFigures {
        clients: config.api_pollers,
        answered_per_s: counts.ok.load(Ordering::Relaxed) as f64
            / started.elapsed().as_secs_f64().max(0.001),
        failed: counts.failed.load(Ordering::Relaxed),
    });
    if let Some(flood) = &flood {
        eprintln!(
            "chat flood: {} messages sent, {} chat frames fanned out to the flood members",
            flood.sent.load(Ordering::Relaxed),
            flood.received.load(Ordering::Relaxed)
        );
    }
    let publisher: PublisherStats = match publisher.await {
        Ok(Ok(stats)) => stats,
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(LoadError::Protocol(format!("publisher task: {e}"))),
    };
    drop(workers);

    let server = match (before, cpu_start, cpu_end) {
        (Some(before), Some(start), Some(end)) => Some(ServerUsage {
            cpu: end.cpu.saturating_sub(start.cpu),
            wall: window,
            packets: packets_end - packets_start,
            rss_before_kib: before.rss_kib,
            rss_after_kib: end.rss_kib,
            media_thread_cpu: media_start
                .zip(media_end)
                .map(|(start, end)| end.saturating_sub(start)),
        }),
        _ => None,
    };
    Ok(Report::build(
        RunFacts {
            target: target_name.to_owned(),
            bitrate_kbps: config.shape.bitrate_kbps,
            fps: config.shape.fps,
            pace_factor: config.shape.pace_factor,
            publisher,
            window: (packets_end - packets_start, window),
            server,
            generator_cpu,
            per_viewer: config.per_viewer,
            api_polls,
        },
        &stats,
    ))
}

/// The address `n` after `first` (`first` itself for 0).
fn nth_address(first: IpAddr, n: u32) -> Result<IpAddr> {
    let next = match first {
        IpAddr::V4(v4) => u32::from(v4)
            .checked_add(n)
            .map(|ip| IpAddr::from(ip.to_be_bytes())),
        IpAddr::V6(v6) => u128::from(v6)
            .checked_add(u128::from(n))
            .map(|ip| IpAddr::from(ip.to_be_bytes())),
    };
    next.ok_or_else(|| LoadError::Protocol(format!("no address {n} after {first}")))
}

/// Whether viewer `index` is one of the `share` (0–1) that watch over a narrow link: spread
/// evenly over the ramp.
fn is_constrained(index: usize, share: f64) -> bool {
    let share = share.clamp(0.0, 1.0);
    ((index + 1) as f64 * share).floor() > (index as f64 * share).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constrained_viewers_get_consecutive_addresses() {
        let first: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(nth_address(first, 0).unwrap(), first);
        assert_eq!(
            nth_address(first, 254).unwrap(),
            "127.0.1.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            nth_address("::1".parse().unwrap(), 2).unwrap(),
            "::3".parse::<IpAddr>().unwrap()
        );
        assert!(nth_address("255.255.255.255".parse().unwrap(), 1).is_err());
    }

    #[test]
    fn constrained_share_is_spread_over_the_ramp() {
        let picked: Vec<usize> = (0..12).filter(|&i| is_constrained(i, 0.25)).collect();
        assert_eq!(picked, [3, 7, 11]);
    }
}

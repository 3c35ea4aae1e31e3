//! `directo-load`: one synthetic WHIP publisher and N WHEP viewers against a Directo server
//! (or a Janus Streaming mountpoint with `--janus`), with loss, forwarding delay, join time
//! and the server's CPU and memory per viewer; or, with `--churn`, streams and viewers that
//! come and go for `--seconds` (for soak runs).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use directo_benches::churn::{self, ChurnConfig};
use directo_benches::load::{LoadConfig, Target, run};
use directo_benches::publisher::RtpTarget;
use directo_benches::report::Report;
use directo_benches::summary;
use directo_benches::synth::{MIN_PACKET_SIZE, VideoShape};
use reqwest::Url;

/// Load a Directo server (or a Janus Streaming mountpoint) with synthetic viewers.
#[derive(Debug, Parser)]
#[command(name = "directo-load", version)]
struct Cli {
    /// Directo's HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: Url,
    /// Stream name to publish and watch (with `--churn`, the start of every stream's name).
    #[arg(long, default_value = "load")]
    stream: String,
    /// Publish key (bearer token for WHIP).
    #[arg(long, env = "DIRECTO_PUBLISH_KEY")]
    key: Option<String>,
    /// Viewers to start.
    #[arg(long, default_value_t = 20)]
    viewers: usize,
    /// Seconds every viewer keeps watching after the last one joined (with `--churn`, how
    /// long the churn lasts).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Viewers started per second (with `--churn`, viewers joining per second).
    #[arg(long, default_value_t = 50.0)]
    ramp_per_s: f64,
    /// Churn instead: `--churn-streams` streams live at a time, each for `--stream-life-s`
    /// under a fresh name, then ended and replaced; viewers join them at `--ramp-per-s`, each
    /// for about `--watch-s` with a chat channel on which it says one thing.
    #[arg(long)]
    churn: bool,
    /// Streams live at a time (`--churn`).
    #[arg(long, default_value_t = 4)]
    churn_streams: usize,
    /// Seconds each stream stays live (`--churn`).
    #[arg(long, default_value_t = 30.0)]
    stream_life_s: f64,
    /// Seconds a viewer watches, on average (`--churn`).
    #[arg(long, default_value_t = 6.0)]
    watch_s: f64,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 1000)]
    bitrate_kbps: u32,
    /// Video frames a second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds between periodic keyframes.
    #[arg(long, default_value_t = 2.0)]
    keyframe_interval_s: f64,
    /// RTP payload size of video packets, bytes.
    #[arg(long, default_value_t = 1100)]
    packet_size: usize,
    /// Pace video packets at this multiple of the bitrate, as a browser's sender does
    /// (libwebrtc paces at 2.5x); 0 sends each frame's packets in one burst.
    #[arg(long, default_value_t = 2.5)]
    pace_factor: f64,
    /// Publish the video as three simulcast layers (¼, ½ and full size at ~10 %, 33 % and
    /// 100 % of the bitrate; Directo only).
    #[arg(long)]
    simulcast: bool,
    /// This share of the viewers (0–1) watch over a link narrowed to `--constrained-kbps`
    /// (they drop what it cannot carry and report their loss in receiver reports).
    #[arg(long, default_value_t = 0.0)]
    constrained_share: f64,
    /// The narrow link's rate, kbit/s.
    #[arg(long, default_value_t = 400)]
    constrained_kbps: u32,
    /// Constrained viewers bind this address (e.g. 127.0.0.2) and the ones after it (127.0.0.3,
    /// ...), one each, and drop nothing themselves: the link to each is narrowed outside, e.g.
    /// by a `tc` class per address on `lo` (see tests/tests/simulcast_netns.rs);
    /// `--constrained-kbps` is then only reported.
    #[arg(long, value_name = "IP")]
    constrained_bind: Option<IpAddr>,
    /// Viewers do not negotiate transport-wide congestion control (by default they do, and
    /// send its feedback every 100 ms, as browsers do).
    #[arg(long)]
    no_transport_cc: bool,
    /// The server's pid, for its CPU time and resident memory (read from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Worker threads for the viewers (default: the CPUs this process may run on).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// The loopback address the synthetic peers bind to (Janus needs one on a
    /// non-loopback interface inside a private network namespace; see compare-janus.sh).
    #[arg(long, default_value = "127.0.0.1")]
    bind_ip: IpAddr,
    /// Chat-only `/ws` members flooding the chat during the run (each writes every 2.1 s).
    #[arg(long, default_value_t = 0)]
    chat_flood: usize,
    /// Clients polling the stream's info (`GET /api/streams/{stream}`) during the run, as the
    /// SDK's player once did every 2 s; the report then has the media thread's CPU share.
    #[arg(long, default_value_t = 0)]
    api_pollers: usize,
    /// Seconds between one poller's asks.
    #[arg(long, default_value_t = 2.0)]
    poll_interval_s: f64,
    /// Viewers watch on these nodes instead, in turn (repeatable): a cluster's edges, while
    /// the publisher publishes to `--server` (its origin).
    #[arg(long, value_name = "URL")]
    viewer_server: Vec<Url>,
    /// Print a table of the JSON lines in these files (from earlier `--json` runs) and exit;
    /// with two files, the first Directo's and the second Janus's, print both and their ratios.
    #[arg(long, num_args = 1..=2, value_name = "FILE")]
    table: Vec<PathBuf>,
    /// Include one row per viewer in the JSON.
    #[arg(long)]
    per_viewer: bool,
    /// Load Janus instead: its HTTP API base, e.g. http://127.0.0.1:8088/janus.
    #[arg(long)]
    janus: Option<Url>,
    /// Janus Streaming mountpoint id.
    #[arg(long, default_value_t = 1)]
    janus_mountpoint: u64,
    /// The mountpoint's Opus RTP port on 127.0.0.1.
    #[arg(long, default_value_t = 5002)]
    janus_audio_port: u16,
    /// The mountpoint's VP8 RTP port on 127.0.0.1.
    #[arg(long, default_value_t = 5004)]
    janus_video_port: u16,
    /// The mountpoint's video RTCP port on 127.0.0.1, for keyframe requests (0: none).
    #[arg(long, default_value_t = 5005)]
    janus_video_rtcp_port: u16,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if !cli.table.is_empty() {
        return print_tables(&cli.table);
    }
    if cli.viewers == 0 || cli.fps == 0 || cli.bitrate_kbps == 0 {
        bail!("--viewers, --fps and --bitrate-kbps must be at least 1");
    }
    if cli.packet_size < MIN_PACKET_SIZE || cli.packet_size > 1400 {
        bail!("--packet-size must be between {MIN_PACKET_SIZE} and 1400 bytes");
    }
    if !(cli.keyframe_interval_s > 0.0 && cli.ramp_per_s > 0.0 && cli.seconds > 0.0) {
        bail!("--keyframe-interval-s, --ramp-per-s and --seconds must be positive");
    }
    let shape = VideoShape {
        bitrate_kbps: cli.bitrate_kbps,
        fps: cli.fps,
        keyframe_interval: Duration::from_secs_f64(cli.keyframe_interval_s),
        packet_size: cli.packet_size,
        pace_factor: cli.pace_factor,
    };
    let threads = cli.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if cli.churn {
        return run_churn(&cli, shape, threads);
    }
    let loopback = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let target = match cli.janus {
        Some(api) => Target::Janus {
            api,
            mountpoint: cli.janus_mountpoint,
            rtp: RtpTarget {
                audio: loopback(cli.janus_audio_port),
                video: loopback(cli.janus_video_port),
                video_rtcp: (cli.janus_video_rtcp_port != 0)
                    .then(|| loopback(cli.janus_video_rtcp_port)),
            },
        },
        None => Target::Directo {
            server: cli.server,
            stream: cli.stream,
            key: cli.key,
        },
    };
    let config = LoadConfig {
        target,
        viewers: cli.viewers,
        seconds: cli.seconds,
        ramp_per_s: cli.ramp_per_s,
        shape,
        server_pid: cli.server_pid,
        threads,
        per_viewer: cli.per_viewer,
        bind_ip: cli.bind_ip,
        chat_flood: cli.chat_flood,
        viewer_servers: cli.viewer_server,
        simulcast: cli.simulcast,
        constrained_share: cli.constrained_share,
        transport_cc: !cli.no_transport_cc,
        api_pollers: cli.api_pollers,
        poll_interval: Duration::from_secs_f64(cli.poll_interval_s.max(0.01)),
        constrained_kbps: cli.constrained_kbps,
        constrained_bind_ip: cli.constrained_bind,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(run(config))?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `--churn`: streams and viewers coming and going, on a multi-threaded runtime.
fn run_churn(cli: &Cli, shape: VideoShape, threads: usize) -> anyhow::Result<()> {
    if !(cli.stream_life_s > 0.0 && cli.watch_s > 0.0) || cli.churn_streams == 0 {
        bail!("--stream-life-s, --watch-s and --churn-streams must be positive");
    }
    let config = ChurnConfig {
        server: cli.server.clone(),
        prefix: cli.stream.clone(),
        key: cli.key.clone(),
        duration: Duration::from_secs_f64(cli.seconds),
        slots: cli.churn_streams,
        stream_life: Duration::from_secs_f64(cli.stream_life_s),
        joins_per_s: cli.ramp_per_s,
        watch: Duration::from_secs_f64(cli.watch_s),
        shape,
        bind_ip: cli.bind_ip,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(churn::run(config))?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

fn read_reports(path: &Path) -> anyhow::Result<Vec<Report>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    summary::parse_lines(&text).with_context(|| format!("parsing {}", path.display()))
}

fn print_tables(files: &[PathBuf]) -> anyhow::Result<()> {
    match files {
        [one] => print!("{}", summary::table(&read_reports(one)?)),
        [directo, janus] => print!(
            "{}",
            summary::compare(&read_reports(directo)?, &read_reports(janus)?)
        ),
        _ => bail!("--table takes one or two files"),
    }
    Ok(())
}

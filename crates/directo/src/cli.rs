//! The command line. Every flag is also an environment variable `DIRECTO_<NAME>`.

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Directo: a WebRTC low-latency broadcast server.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, accepted without the subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
    /// Print a signed access token.
    Token(TokenArgs),
    /// Make a recording cut short by a crash seekable (writes Cues and Duration).
    Recover {
        /// The `.webm` or `.mkv` file.
        file: PathBuf,
    },
}

/// Flags of `directo token`.
#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    /// The stream the token is for, or `*` for all.
    #[arg(long)]
    pub stream: String,
    /// publisher, viewer, moderator or admin.
    #[arg(long)]
    pub role: String,
    /// How long it is valid: e.g. `90s`, `15m`, `2h`, `7d`.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// The display name of its holder.
    #[arg(long)]
    pub name: Option<String>,
    /// The signing secret (default: the one kept in the data directory).
    #[arg(long, env = "DIRECTO_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Where the server keeps its secret.
    #[arg(long, env = "DIRECTO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// Flags of `directo serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// HTTP address for WHIP, WHEP, the API and the pages.
    #[arg(long, env = "DIRECTO_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The one UDP port every peer's media uses.
    #[arg(long, env = "DIRECTO_MEDIA_PORT", default_value_t = 7880)]
    pub media_port: u16,
    /// The address the media port binds to.
    #[arg(long, env = "DIRECTO_MEDIA_BIND", default_value = "0.0.0.0")]
    pub media_bind: IpAddr,
    /// Address to announce to peers (repeatable; for NAT 1:1). Default: every interface address.
    #[arg(long, env = "DIRECTO_PUBLIC_IP", value_delimiter = ',')]
    pub public_ip: Vec<IpAddr>,
    /// Where recordings and chat logs are kept.
    #[arg(long, env = "DIRECTO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The key publishers present as `Authorization: Bearer <key>` (default: generated, logged once).
    #[arg(long, env = "DIRECTO_PUBLISH_KEY", hide_env_values = true)]
    pub publish_key: Option<String>,
    /// The key moderators present (WHEP bearer token, or `key` in a `/ws` join) to delete
    /// messages, mute and ban. Without it nobody can moderate.
    #[arg(long, env = "DIRECTO_MODERATOR_KEY", hide_env_values = true)]
    pub moderator_key: Option<String>,
    /// The secret that signs access tokens (default: generated once, kept in the data dir).
    #[arg(long, env = "DIRECTO_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Streams (with a publisher or viewers) at once; more are refused with 503.
    #[arg(long, env = "DIRECTO_MAX_STREAMS", default_value_t = 100)]
    pub max_streams: usize,
    /// Viewers of one stream; more are refused with 503.
    #[arg(long, env = "DIRECTO_MAX_VIEWERS_PER_STREAM", default_value_t = 5000)]
    pub max_viewers_per_stream: usize,
    /// Publisher sessions open from one client address; more are refused with 429. (Viewers
    /// are not limited per address: a whole office may watch from one.)
    #[arg(long, env = "DIRECTO_MAX_SESSIONS_PER_IP", default_value_t = 50)]
    pub max_sessions_per_ip: usize,
    /// New viewing sessions (WHEP requests, `/ws` upgrades) per second from one address,
    /// sustained; more get 429.
    #[arg(long, env = "DIRECTO_NEW_SESSIONS_PER_SECOND", default_value_t = 20)]
    pub new_sessions_per_second: u32,
    /// New viewing sessions from one address at once, before `--new-sessions-per-second`
    /// applies.
    #[arg(long, env = "DIRECTO_NEW_SESSIONS_BURST", default_value_t = 100)]
    pub new_sessions_burst: u32,
    /// Other requests that create work (publishing, the API: POST/PUT/DELETE/PATCH) per
    /// minute from one address; more get 429. Pages, polls and health checks are not counted.
    #[arg(long, env = "DIRECTO_MAX_REQUESTS_PER_MINUTE", default_value_t = 600)]
    pub max_requests_per_minute: u32,
    /// Failed credentials (wrong key or token, unknown session URL) per minute from one
    /// address; after that, requests from it presenting credentials get 429 until the minute
    /// is over.
    #[arg(
        long,
        env = "DIRECTO_MAX_AUTH_FAILURES_PER_MINUTE",
        default_value_t = 20
    )]
    pub max_auth_failures_per_minute: u32,
    /// Seconds without any packet after which a connected peer is dropped.
    #[arg(long, env = "DIRECTO_IDLE_TIMEOUT_S", default_value_t = 15)]
    pub idle_timeout_s: u64,
    /// A PEM certificate chain: serve HTTPS (browsers give cameras only to HTTPS pages).
    #[arg(long, env = "DIRECTO_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "DIRECTO_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy in front of Directo whose `X-Forwarded-For` is believed (repeatable).
    #[arg(long, env = "DIRECTO_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<IpAddr>,
    /// An origin (`https://shop.example`) whose pages may call WHIP, WHEP and the API from a
    /// browser (repeatable). Default: any origin.
    #[arg(long, env = "DIRECTO_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// Do not record streams (the admin API can still switch recording on per stream).
    #[arg(long, env = "DIRECTO_NO_RECORD")]
    pub no_record: bool,
    /// H264 bitrate (kbit/s) when a restreamed stream's VP8/VP9 video is encoded for RTMP.
    #[arg(long, env = "DIRECTO_RESTREAM_VIDEO_KBPS", default_value_t = 2500)]
    pub restream_video_kbps: u32,
    /// AAC bitrate (kbit/s) of restreamed audio.
    #[arg(long, env = "DIRECTO_RESTREAM_AUDIO_KBPS", default_value_t = 128)]
    pub restream_audio_kbps: u32,
    /// Restream destinations one stream may have.
    #[arg(long, env = "DIRECTO_RESTREAM_MAX", default_value_t = 8)]
    pub restream_max: usize,
    /// The ffmpeg program restreaming runs.
    #[arg(long, env = "DIRECTO_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: String,
    /// Check that no SRTP (SSRC, index) pair is ever protected twice toward a viewer, counting
    /// any in `directo_srtp_index_reuse_total` (for tests: a hash insert per forwarded packet).
    #[arg(long, env = "DIRECTO_SRTP_AUDIT", hide = true)]
    pub srtp_audit: bool,
    /// Threads that encrypt and send a stream's forwarded packets (viewers are sharded over
    /// them; the media thread is one). 0: one per core the process may use.
    #[arg(long, env = "DIRECTO_FANOUT_THREADS", default_value_t = 0)]
    pub fanout_threads: usize,
    /// Keep every viewer's whole WebRTC connection for its life. By default a WHEP viewer
    /// without a data channel keeps only its SRTP contexts, address and ICE consent once
    /// connected, which saves memory and timers per viewer.
    #[arg(long, env = "DIRECTO_KEEP_VIEWER_CONNECTIONS")]
    pub keep_viewer_connections: bool,
    /// Open local mode: publishing needs no key.
    #[arg(long, env = "DIRECTO_DEV")]
    pub dev: bool,
    /// Join a cluster coordinated through Redis: `redis://[:password@]host:6379[/db]`, or
    /// `rediss://…` for TLS. Every node needs the same `--secret`.
    #[arg(long, env = "DIRECTO_CLUSTER", hide_env_values = true)]
    pub cluster: Option<String>,
    /// This node's id in the cluster, `[A-Za-z0-9._:-]{1,64}` (default: host name and HTTP
    /// port).
    #[arg(long, env = "DIRECTO_NODE_ID", requires = "cluster")]
    pub node_id: Option<String>,
    /// How other nodes and redirected viewers reach this node's HTTP, e.g.
    /// `https://edge-1.example` (default: from `--http`, `--public-ip` and the scheme).
    #[arg(long, env = "DIRECTO_NODE_URL", requires = "cluster")]
    pub node_url: Option<String>,
    /// Viewers this node serves before it redirects new ones to other nodes (default: no
    /// limit).
    #[arg(
        long,
        env = "DIRECTO_MAX_VIEWERS_PER_NODE",
        requires = "cluster",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_viewers_per_node: Option<u64>,
    /// Other nodes one node feeds a stream to in the relay tree.
    #[arg(
        long,
        env = "DIRECTO_MAX_RELAYS_PER_NODE",
        default_value_t = 4,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000)
    )]
    pub max_relays_per_node: usize,
    /// In a cluster, how long SIGTERM waits for this node's clients to move to other nodes
    /// before it closes the sessions still here.
    #[arg(long, env = "DIRECTO_DRAIN_TIMEOUT_S", default_value_t = 30)]
    pub drain_timeout_s: u64,
}

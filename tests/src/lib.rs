//! Rust WebRTC clients for Directo's end-to-end tests and its load generator.
//!
//! - [`TestServer`] runs one `directo serve` on free local ports and kills it on drop;
//!   [`Cluster`] runs several with `--cluster` on a throw-away Redis.
//! - [`Publisher`] publishes synthetic Opus + VP8 over WHIP, answering PLI/FIR with keyframes.
//! - [`Viewer`] watches over WHEP (or any signaling) and records every RTP header it receives.
//! - [`MediaPublisher`] publishes real VP8 or H264 + Opus (a [`MediaSource`] made by ffmpeg)
//!   paced in real time; [`ffmpeg`] (from `directo-testkit`) judges recordings with ffprobe
//!   and ffmpeg, and
//!   [`recordings`] finds them through the API and on disk.
//! - [`WsClient`] speaks `signaling-proto` over `/ws`.
//! - [`ChatMember`] is one member of a stream's chat: on a viewer's or publisher's `chat` data
//!   channel (`chat: true` in their config), or over `/ws` without WebRTC.
//!
//! The clients use the async `webrtc` crate on tokio and bind 127.0.0.1 only. They are cheap
//! enough to run by the hundred: one peer connection each, no decoding, counters behind atomics.

pub mod access;
mod chat;
mod cluster;
mod error;
mod http;
mod lossy_link;
mod media_publisher;
mod media_source;
mod offers;
mod peer;
mod publisher;
pub mod recordings;
mod rtp_log;
mod send_tracks;
mod server;
mod settling_runtime;
mod skewed_reports;
pub mod turn;
mod viewer;
pub mod vp8;
mod wait;
mod ws;

pub use chat::{CHAT_LABEL, ChatHistory, ChatLinkState, ChatMember};
pub use cluster::{CLUSTER_SECRET, Cluster, node_args};
pub use directo_cluster::testkit::{Monitor, RedisServer};
pub use directo_testkit::ffmpeg;
pub use error::{ClientError, Result};
pub use http::{
    PostAnswer, Session, delete_session, http_client, http_client_from, post_offer, post_offer_raw,
    read_error, status_error, with_name,
};
pub use media_publisher::{
    MediaPublisher, MediaPublisherConfig, SentFrame, SentMedia, frame_duration_ms,
};
pub use media_source::{MediaSource, SOURCE_FPS};
pub use offers::{padded_offer, single_codec_offer};
pub use publisher::{Publisher, PublisherConfig};
pub use rtp_log::{Discontinuity, MediaKind, RtpRecord, SequenceReport, TimestampStep, TrackLog};
pub use server::{DEFAULT_PUBLISH_KEY, ServerOptions, TestServer, binary_path};
pub use skewed_reports::SkewedReports;
pub use viewer::{Viewer, ViewerConfig, ViewerReport};
pub use wait::{wait_for, wait_until};
pub use webrtc::peer_connection::RTCPeerConnectionState;
pub use ws::WsClient;

use std::time::Duration;

/// How long tests give a peer to connect (ICE + DTLS); generous for a loaded 2-core machine.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long tests give media to arrive once connected.
pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);
/// The share of packets a viewer may miss on loopback and still play smoothly. Directo itself
/// loses nothing on loopback, but on a shared two-core machine under load the kernel drops
/// datagrams when a client's socket buffer fills before its task runs; a viewer's NACKs
/// recover most of them, a browser conceals the rest. A server that drops, reorders or
/// renumbers wrongly (a reset or jump of the sequence numbers counts its whole jump as
/// missing) is far outside it. Exact continuity of the numbering is proven where nothing is
/// lost: in memory, by `directo-sfu`'s tests.
pub const LOSS_BUDGET: f64 = 0.02;
/// How long tests give a chat message (or a refusal, or a presence update) to arrive.
pub const CHAT_TIMEOUT: Duration = Duration::from_secs(30);

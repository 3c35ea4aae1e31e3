//! The media engine: one UDP port shared by every peer, driven on one thread, with each
//! stream's fan-out (encrypt and send per viewer) sharded over that thread and worker threads.
//!
//! It owns the sockets and the `rtc` peer connections (ICE-lite, DTLS, SRTP, SCTP), demultiplexes
//! datagrams by STUN username and then by 4-tuple, and feeds and drains the per-stream forwarding
//! state of `directo-sfu`. It does not know about HTTP: the server talks to it through an
//! [`EngineHandle`].

mod analytics;
mod chat_port;
mod consent;
mod demux;
mod engine;
mod error;
mod fanout;
mod handle;
mod metrics;
mod offer;
mod peer;
mod recording;
pub mod relay;
mod restream;
mod rtcp_tap;
mod setup;
mod socket;
mod srtp_audit;
mod tcp;

pub use analytics::AudienceStats;
pub use chat_port::{
    CHAT_LABEL, ChatIn, ChatOut, ChatPort, ChatRole, ChatService, Identity, MAX_CHAT_BUFFERED,
    chat_channels,
};
pub use demux::Demuxer;
pub use directo_sfu::{Codec, KeyframeRequestKind, MediaKind, PublishedTrack};
pub use engine::start;
pub use error::MediaError;
pub use handle::{
    EngineEvent, EngineHandle, Limits, MediaConfig, Quality, RecordingPolicy, SessionAnswer,
    SessionEvent, SessionInfo,
};
pub use restream::{PASSTHROUGH_KEYFRAME_INTERVAL, RecordingTracks, RestreamPort};
pub use setup::{relay_codecs, relay_extensions};

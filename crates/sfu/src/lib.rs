//! The sans-IO forwarding core of Directo: one [`Stream`] per stream name takes a
//! publisher's RTP and RTCP in and says what to send to each subscriber (viewer) and to the
//! publisher, as [`Output`]s. No sockets, no tokio, no clock: time comes in as an argument,
//! like str0m's `Rtc`. The media engine decrypts, feeds, drains and encrypts.
//!
//! What happens to one packet: the publisher's track ([`PublishedTrack`], state in
//! `track::UpTrack`) unwraps its sequence number and compacts dropped padding out of the
//! sequence space, keeps it once in the shared NACK cache, and hands it to each viewer's
//! down track, which gates it on the viewer's first keyframe and rewrites SSRC, payload
//! type, sequence number, timestamp and header extensions for that viewer.
//!
//! # Design for what comes next
//!
//! * **Sharding subscribers over worker threads.** Everything per viewer lives in its
//!   down track (`down_track::DownTrack`, with its `munger::RtpMunger`); the per-track state
//!   shared by viewers (sequence compaction, NACK cache, keyframe requests, clock mapping)
//!   lives in `UpTrack`. A sharded stream runs the up-track step once per packet and
//!   hands the result (compacted sequence number, keyframe flag, packet with a shared
//!   `Bytes` payload) to each worker, which owns a slice of the subscribers outright.
//! * **Simulcast** (built): a publisher's video may be two or three layers (RIDs), each an
//!   `UpTrack` of its own. Each viewer's video down track is bound to one layer and may have a
//!   target layer; at the target's next keyframe the munger re-bases the numbering, so the
//!   viewer sees one continuous stream. The layer comes from the viewer's pinned [`Quality`] or
//!   its bandwidth estimate (`layers::BandwidthEstimator`: receiver-report loss, the delay
//!   trend of transport-wide congestion control feedback (`twcc`), REMB). Moving up is probed
//!   first (`probe`: the difference in bitrate as duplicates, judged by the viewer's transport
//!   feedback); below the smallest layer a VP8 layer is thinned to its lower temporal layers
//!   (`vp8::TemporalFilter`), the munger closing the gaps and picture ids renumbered.

mod codec;
mod down_track;
mod extensions;
mod keyframe;
mod keyframe_requester;
mod layers;
mod munger;
mod nack_cache;
mod probe;
mod rtcp_tap;
mod sender_report;
mod sequence;
mod stats;
mod stream;
mod track;
mod trendline;
mod twcc;
mod vp8;

pub use codec::{Codec, KeyframeRequestKind, MediaKind};
pub use down_track::{DownTrackConfig, RETRANSMIT_INTERVAL};
pub use keyframe::is_keyframe_start;
pub use keyframe_requester::KEYFRAME_REQUEST_INTERVAL;
pub use layers::Quality;
pub use nack_cache::NACK_CACHE_SIZE;
pub use rtcp_tap::{
    RTCP_TAP_SLOT, RtcpSelection, RtcpTap, is_keyframe_request, keyframe_request_ssrc,
};
pub use sender_report::SENDER_REPORT_INTERVAL;
pub use stats::StreamStats;
pub use stream::{Output, PeerId, Stream};
pub use track::PublishedTrack;
pub use twcc::{TRANSPORT_CC_URI, negotiate_transport_cc};

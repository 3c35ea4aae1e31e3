//! The sans-IO forwarding core of Directo: one [`Stream`] per stream name takes a
//! publisher's RTP and RTCP in and says what to send to each subscriber (viewer) and to the
//! publisher, as [`Output`]s. No sockets, no tokio, no clock: time comes in as an argument,
//! like str0m's `Rtc`. The media engine decrypts, feeds, drains and encrypts.
//!
//! What happens to one packet: the publisher's track ([`PublishedTrack`], state in
//! `track::UpTrack`) unwraps its sequence number and compacts dropped padding out of the
//! sequence space, drops it if it was seen before, keeps it once in the shared NACK cache, and
//! hands it to each viewer's down track, which gates it on the viewer's first keyframe and
//! rewrites SSRC, payload type, sequence number, timestamp and header extensions for that
//! viewer.
//!
//! No (SSRC, sequence number) is ever sent to a viewer twice: the engine encrypts each packet
//! with SRTP, whose nonce comes from the SSRC and the packet index, and a second packet under
//! the same nonce with other bytes (a new transport-wide sequence number is enough) gives the
//! AES-GCM key's authentication secret away. So a NACK is answered from the cache over the
//! viewer's RTX stream (RFC 4588, `rtx`): its own SSRC and numbering, the original sequence
//! number in the payload. A viewer that did not negotiate RTX is never resent anything; a lost
//! video packet asks the publisher for a keyframe instead, collapsed with everyone's requests.
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
//!   first (`probe`: the difference in bitrate as RTX copies of recent packets, judged by the
//!   viewer's transport feedback; a viewer without RTX or that feedback moves up unprobed);
//!   below the smallest layer a VP8 layer is thinned to its lower temporal layers
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
mod rtx;
mod sender_report;
mod sequence;
mod stats;
mod stream;
#[cfg(test)]
mod test_clock;
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
pub use rtx::RtxConfig;
pub use sender_report::SENDER_REPORT_INTERVAL;
pub use stats::StreamStats;
pub use stream::{Output, PeerId, Stream};
pub use track::PublishedTrack;
pub use twcc::{TRANSPORT_CC_URI, negotiate_transport_cc};

//! A publisher's track: what the publisher negotiated ([`PublishedTrack`]) and the state the
//! stream keeps once per track for all viewers ([`UpTrack`]): sequence unwrapping and
//! padding compaction, the NACK cache, keyframe requests and the sender-report clock
//! mapping. Per-viewer state lives in the down track, never here.

use std::time::Instant;

use crate::codec::{Codec, KeyframeRequestKind, MediaKind};
use crate::keyframe_requester::KeyframeRequester;
use crate::nack_cache::NackCache;
use crate::sender_report::ClockMapping;
use crate::sequence::{PaddingCompactor, SeqUnwrapper};
use crate::stats::RateWindow;

/// One track a publisher sends, as negotiated with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec the publisher sends.
    pub codec: Codec,
    /// The publisher's SSRC for this track.
    pub ssrc: u32,
    /// How the publisher wants to be asked for keyframes (what it negotiated).
    pub keyframe_request: KeyframeRequestKind,
    /// The publisher's negotiated header extensions: id -> URI.
    pub extensions: Vec<(u8, String)>,
    /// The simulcast layer's RID (`a=rid`), when the video is one of several encodings.
    pub rid: Option<String>,
}

/// Shared per-track state of the current publisher generation.
#[derive(Debug)]
pub(crate) struct UpTrack {
    pub(crate) unwrapper: SeqUnwrapper,
    pub(crate) compactor: PaddingCompactor,
    pub(crate) cache: NackCache,
    pub(crate) keyframes: KeyframeRequester,
    pub(crate) clock: Option<ClockMapping>,
    /// The track's incoming bitrate (ranks simulcast layers).
    pub(crate) rate: RateWindow,
}

impl UpTrack {
    /// Fresh state for a newly published track.
    pub(crate) fn new(track: &PublishedTrack) -> Self {
        Self {
            unwrapper: SeqUnwrapper::default(),
            compactor: PaddingCompactor::default(),
            cache: NackCache::new(),
            keyframes: KeyframeRequester::new(track.keyframe_request),
            clock: None,
            rate: RateWindow::default(),
        }
    }

    /// Records the publisher's sender report.
    pub(crate) fn on_sender_report(&mut self, ntp_time: u64, rtp_time: u32, now: Instant) {
        self.clock = Some(ClockMapping {
            ntp_time,
            rtp_time,
            received_at: now,
        });
    }
}

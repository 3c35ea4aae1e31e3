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
    /// The incoming bitrate of each VP8 temporal layer (TID 0, 1, 2 and above), when the
    /// publisher tags its frames with one.
    pub(crate) temporal_rates: [RateWindow; TEMPORAL_LAYERS],
    /// How many temporal layers the publisher sends (0: untagged).
    pub(crate) temporal_layers: usize,
    /// Video: the newest keyframe's first packet (compacted sequence number) and when it
    /// arrived, where a joining viewer may start from the cache (`stream/cached_start.rs`).
    pub(crate) last_keyframe: Option<(u64, Instant)>,
    /// The newest packet in the cache (compacted sequence number).
    pub(crate) newest: Option<u64>,
}

/// Temporal layers told apart (VP8 allows four; a fourth counts with the third).
pub(crate) const TEMPORAL_LAYERS: usize = 3;

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
            temporal_rates: Default::default(),
            temporal_layers: 0,
            last_keyframe: None,
            newest: None,
        }
    }

    /// Counts `bytes` of a frame of temporal layer `tid`.
    pub(crate) fn on_temporal(&mut self, tid: u8, bytes: u64, now: Instant) {
        let layer = usize::from(tid).min(TEMPORAL_LAYERS - 1);
        self.temporal_layers = self.temporal_layers.max(layer + 1);
        self.temporal_rates[layer].add(now, bytes);
    }

    /// The bitrate of temporal layers 0 to `up_to` together.
    pub(crate) fn temporal_bps(&self, up_to: u8, now: Instant) -> u64 {
        self.temporal_rates
            .iter()
            .take(usize::from(up_to).saturating_add(1))
            .map(|rate| rate.bitrate_bps(now))
            .sum()
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

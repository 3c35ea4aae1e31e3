//! A down track: everything one viewer's copy of one track needs, and nothing shared. It
//! picks the viewer's payload type, translates header extensions, munges sequence numbers
//! and timestamps, answers NACKs from the track's shared cache over the viewer's RTX stream,
//! copies recent packets there as probe traffic, and builds this viewer's sender reports.
//!
//! Every packet it emits takes a (SSRC, sequence number) pair the viewer has not been sent
//! before: a live packet its own number on the media SSRC, exactly once; a retransmission or a
//! probe the next number of the RTX stream. A viewer without RTX gets neither (see `rtx`).
//!
//! Keeping this state in its own type is what lets subscribers later be sharded over
//! worker threads (a shard owns its down tracks outright) and lets a simulcast layer
//! selector sit in front of the munger per viewer.

use std::time::{Duration, Instant};

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::Packet;
use rtc::rtp::header::Header;

use crate::codec::{Codec, MediaKind};
use crate::extensions::ExtensionMap;
use crate::layers::{BandwidthEstimator, Quality};
use crate::munger::{Munged, RtpMunger};
use crate::nack_cache::NackCache;
use crate::probe::Probe;
use crate::rtx::{RtxBuffer, RtxConfig, RtxStream};
use crate::sender_report::ClockMapping;
use crate::track::PublishedTrack;
use crate::vp8::{self, Descriptor, PicturePatch, TemporalFilter, Verdict};

/// The shortest time between two retransmissions of one packet to one viewer: a viewer
/// that NACKs again sooner has not had time to receive the first one.
pub const RETRANSMIT_INTERVAL: Duration = Duration::from_millis(100);

/// Ring size of the per-viewer retransmission throttle.
const RESEND_SLOTS: usize = 64;

/// One viewer's side of one track, as negotiated with that viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownTrackConfig {
    /// Audio or video.
    pub kind: MediaKind,
    /// Our SSRC toward this viewer.
    pub ssrc: u32,
    /// The viewer's negotiated payload type per codec.
    pub payload_types: Vec<(Codec, u8)>,
    /// The viewer's negotiated header extensions: id -> URI.
    pub extensions: Vec<(u8, String)>,
    /// The simulcast layer the viewer wants (video; ignored without simulcast).
    pub quality: Quality,
    /// Retransmissions over RTX, when the viewer negotiated it; without, lost packets are
    /// never resent and the link is never probed.
    pub rtx: Option<RtxConfig>,
}

/// Per-viewer forwarding state of one track.
#[derive(Debug)]
pub(crate) struct DownTrack {
    config: DownTrackConfig,
    /// The viewer's payload type for the current source's codec; `None` when there is no
    /// source or the viewer cannot receive its codec.
    payload_type: Option<u8>,
    clock_rate: u32,
    /// The source is VP8 (its picture ids may need renumbering).
    vp8: bool,
    extensions: ExtensionMap,
    munger: RtpMunger,
    mismatch_reported: Option<Codec>,
    /// Live packets and payload bytes sent on the media SSRC (RTX has its own stream).
    packets_sent: u32,
    octets_sent: u32,
    /// Compacted sequence number and time of recent retransmissions, allocated on the
    /// first NACK.
    resent: Vec<Option<(u64, Instant)>>,
    /// Where retransmissions and probe packets go, when the viewer negotiated RTX.
    rtx: Option<RtxStream>,
    /// The stream's track (index) this down track is bound to: for simulcast video, the
    /// layer the viewer is getting.
    pub(crate) layer: Option<usize>,
    /// The layer the viewer switches to at that layer's next keyframe.
    pub(crate) target: Option<usize>,
    /// The viewer's quality choice.
    pub(crate) quality: Quality,
    /// The viewer's bandwidth estimate.
    pub(crate) bwe: BandwidthEstimator,
    /// Which of the layer's temporal layers the viewer gets (VP8).
    pub(crate) temporal: TemporalFilter,
    /// The probe of the viewer's link before it moves up a layer.
    pub(crate) probe: Probe,
}

impl DownTrack {
    /// A down track with no source yet.
    pub(crate) fn new(config: DownTrackConfig) -> Self {
        Self {
            quality: config.quality,
            rtx: config.rtx.clone().map(RtxStream::new),
            config,
            payload_type: None,
            clock_rate: 0,
            vp8: false,
            extensions: ExtensionMap::default(),
            munger: RtpMunger::default(),
            mismatch_reported: None,
            packets_sent: 0,
            octets_sent: 0,
            resent: Vec::new(),
            layer: None,
            target: None,
            bwe: BandwidthEstimator::default(),
            temporal: TemporalFilter::default(),
            probe: Probe::Idle,
        }
    }

    /// Audio or video.
    pub(crate) fn kind(&self) -> MediaKind {
        self.config.kind
    }

    /// Our SSRC toward the viewer.
    pub(crate) fn ssrc(&self) -> u32 {
        self.config.ssrc
    }

    /// Whether packets of the current source can be resent (and probed with) over RTX.
    pub(crate) fn has_rtx(&self) -> bool {
        self.rtx.as_ref().is_some_and(RtxStream::is_active)
    }

    /// Takes over what the viewer was sent on `previous`, the down track this one replaces
    /// (the viewer was subscribed again, e.g. after a renegotiation): on the same SSRCs the
    /// numbering resumes after the last packet sent, as after a publisher change, so that no
    /// (SSRC, sequence number) is used twice.
    pub(crate) fn continue_from(&mut self, previous: DownTrack) {
        if previous.config.ssrc == self.config.ssrc {
            self.munger = previous.munger;
            self.munger.new_source();
            self.packets_sent = previous.packets_sent;
            self.octets_sent = previous.octets_sent;
        }
        if let (Some(rtx), Some(old)) = (self.rtx.as_mut(), previous.rtx.as_ref()) {
            rtx.continue_from(old);
        }
    }

    /// Binds to a new publisher generation's track, or to another simulcast layer, given as
    /// its index in the stream and the track (or to none). The viewer's numbering resumes at
    /// the new source's next start packet. Returns the codec to report as a mismatch the
    /// first time the viewer cannot receive it.
    pub(crate) fn bind(&mut self, source: Option<(usize, &PublishedTrack)>) -> Option<Codec> {
        self.munger.new_source();
        self.target = None;
        self.probe = Probe::Idle;
        self.layer = source.map(|(index, _)| index);
        let Some((_, track)) = source else {
            self.payload_type = None;
            if let Some(rtx) = &mut self.rtx {
                rtx.bind(None);
            }
            return None;
        };
        self.clock_rate = track.codec.clock_rate();
        self.vp8 = track.codec == Codec::Vp8;
        self.extensions = ExtensionMap::new(&track.extensions, &self.config.extensions);
        self.payload_type = self
            .config
            .payload_types
            .iter()
            .find(|(codec, _)| *codec == track.codec)
            .map(|(_, payload_type)| *payload_type);
        if let Some(rtx) = &mut self.rtx {
            rtx.bind(self.payload_type);
        }
        if self.payload_type.is_none() && self.mismatch_reported != Some(track.codec) {
            self.mismatch_reported = Some(track.codec);
            return Some(track.codec);
        }
        None
    }

    /// Whether this viewer can receive the current source (there is one, in a codec it
    /// negotiated).
    pub(crate) fn can_receive(&self) -> bool {
        self.payload_type.is_some()
    }

    /// Whether this viewer can receive the source but has not had its start packet yet.
    pub(crate) fn is_waiting(&self) -> bool {
        self.can_receive() && !self.munger.is_started()
    }

    /// Whether this down track needs a keyframe of the stream's track `index`: to start on
    /// it, or to switch to it.
    pub(crate) fn needs_keyframe_of(&self, index: usize) -> bool {
        (self.layer == Some(index) && self.is_waiting()) || self.target == Some(index)
    }

    /// Rewrites a live packet for this viewer, or `None` if it is not for this viewer
    /// (before its first keyframe, older than its start, a codec it cannot receive, or a
    /// frame of a temporal layer it does not get). `descriptor` is the packet's VP8
    /// descriptor, parsed once for all viewers.
    pub(crate) fn forward(
        &mut self,
        compacted: u64,
        packet: &Packet,
        can_start: bool,
        descriptor: Option<&Descriptor>,
        now: Instant,
    ) -> Option<Packet> {
        let payload_type = self.payload_type?;
        if let Verdict::Drop { picture } = self.temporal.admit(descriptor, can_start) {
            self.munger.skip(compacted, picture);
            return None;
        }
        if can_start && self.temporal.current() == vp8::ALL_LAYERS {
            // Back on every frame: a keyframe is where the viewer can jump ahead to the
            // publisher's own picture ids (and stop paying for a renumbered copy).
            self.munger.rebase_pictures(compacted);
        }
        let munged = self.munger.munge(
            compacted,
            packet.header.timestamp,
            can_start,
            self.clock_rate,
            now,
        )?;
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(packet.payload.len() as u32);
        Some(self.rewrite(packet, payload_type, munged))
    }

    /// Whether `viewer_seq` names a packet this viewer was sent that the cache still holds:
    /// what a NACK of a viewer without RTX says was lost on its link.
    pub(crate) fn was_sent(&self, viewer_seq: u16, cache: &NackCache) -> bool {
        self.munger
            .to_compacted(viewer_seq)
            .is_some_and(|compacted| cache.get(compacted).is_some())
    }

    /// The retransmission, as an RTX packet, of the packet the viewer NACKed as `viewer_seq`,
    /// if the viewer has RTX, the cache still holds the packet, the viewer was meant to get
    /// it, and it was not resent just now.
    pub(crate) fn retransmit(
        &mut self,
        viewer_seq: u16,
        cache: &NackCache,
        buffer: &mut RtxBuffer,
        now: Instant,
    ) -> Option<Packet> {
        let payload_type = self.payload_type.filter(|_| self.has_rtx())?;
        let compacted = self.munger.to_compacted(viewer_seq)?;
        let packet = cache.get(compacted)?;
        if self.resent.is_empty() {
            self.resent.resize(RESEND_SLOTS, None);
        }
        let slot = &mut self.resent[(compacted % RESEND_SLOTS as u64) as usize];
        if let Some((seq, at)) = *slot
            && seq == compacted
            && now < at + RETRANSMIT_INTERVAL
        {
            return None;
        }
        *slot = Some((compacted, now));
        let munged = self
            .munger
            .munge_retransmission(compacted, packet.header.timestamp)?;
        let original = self.rewrite(packet, payload_type, munged);
        self.rtx.as_mut()?.wrap(original, buffer)
    }

    /// A copy, as an RTX packet, of a packet this viewer was sent lately (`back` packets
    /// before the newest): probe traffic the receiver recognises as a packet it already has.
    /// `None` without RTX, or when that packet was not sent to this viewer or is no longer
    /// cached.
    pub(crate) fn probe_copy(
        &mut self,
        back: u64,
        cache: &NackCache,
        buffer: &mut RtxBuffer,
    ) -> Option<Packet> {
        let payload_type = self.payload_type.filter(|_| self.has_rtx())?;
        let compacted = self.munger.highest()?.checked_sub(back)?;
        let packet = cache.get(compacted)?;
        let munged = self
            .munger
            .munge_retransmission(compacted, packet.header.timestamp)?;
        // Only a packet it was sent: a skipped one's numbers belong to the next packet.
        if self.munger.to_compacted(munged.seq) != Some(compacted) {
            return None;
        }
        let original = self.rewrite(packet, payload_type, munged);
        self.rtx.as_mut()?.wrap(original, buffer)
    }

    /// This viewer's sender report, once it has been started on the current source.
    pub(crate) fn sender_report(&self, clock: &ClockMapping, now: Instant) -> Option<SenderReport> {
        let ts_offset = self.munger.ts_offset()?;
        let (ntp_time, rtp_time) = clock.extrapolate(now, self.clock_rate);
        Some(SenderReport {
            ssrc: self.config.ssrc,
            ntp_time,
            rtp_time: rtp_time.wrapping_add(ts_offset),
            packet_count: self.packets_sent,
            octet_count: self.octets_sent,
            ..Default::default()
        })
    }

    /// `source` in this viewer's numbering and header extensions, on its media SSRC.
    fn rewrite(&self, source: &Packet, payload_type: u8, munged: Munged) -> Packet {
        let mut header = Header {
            version: source.header.version,
            // The publisher's padding was stripped on receipt; re-adding it only wastes bytes.
            padding: false,
            marker: source.header.marker,
            payload_type,
            sequence_number: munged.seq,
            timestamp: munged.timestamp,
            ssrc: self.config.ssrc,
            csrc: source.header.csrc.clone(),
            ..Default::default()
        };
        self.extensions.translate_into(&source.header, &mut header);
        let payload = if self.vp8 && munged.picture_offset != 0 {
            PicturePatch {
                offset: munged.picture_offset,
            }
            .apply(&source.payload)
        } else {
            source.payload.clone()
        };
        Packet { header, payload }
    }
}

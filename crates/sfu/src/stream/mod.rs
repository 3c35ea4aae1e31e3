//! A stream: one publisher (at most one audio track and one video track, the video possibly
//! as two or three simulcast layers) fanned out to any number of subscribers. This is the sans-IO state machine the media engine drives:
//! it feeds decrypted RTP and RTCP in with the current time, calls `handle_timeout` when
//! `poll_timeout` says so, and drains `poll_output` after every call.
//!
//! The stream owns the per-track shared state ([`UpTrack`]) and the list of subscribers;
//! each subscriber owns its down tracks. It does not own sockets, encryption, RTCP parsing
//! or SDP: those are the engine's.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rtc::interceptor::Usage;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtp::Packet;
use rtc::shared::marshal::MarshalSize;

use crate::codec::{Codec, KeyframeRequestKind, MediaKind};
use crate::down_track::{DownTrack, DownTrackConfig};
use crate::keyframe::is_keyframe_start;
use crate::layers::{BandwidthEstimator, Quality, choose_layer, choose_temporal, rid_rank};
use crate::probe::{MAX_PER_TICK, Probe, Tick};
use crate::rtx::RtxBuffer;
use crate::sender_report::SENDER_REPORT_INTERVAL;
use crate::stats::{RateWindow, StreamStats};
use crate::track::{PublishedTrack, UpTrack};
use crate::twcc::TransportCc;
use crate::vp8;

/// Identifies a publisher or a subscriber; chosen by the caller.
pub type PeerId = u64;

/// Something the engine must do, drained with [`Stream::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// One RTP packet to write to a subscriber's down track (SSRC/seq/ts/PT/extensions
    /// already rewritten): on the track's media SSRC, or on its RTX SSRC for a retransmission
    /// or a probe.
    Rtp {
        /// The viewer to send it to.
        subscriber: PeerId,
        /// Which of the viewer's down tracks carries it.
        kind: MediaKind,
        /// The packet, ready to encrypt.
        packet: Packet,
    },
    /// Ask the publisher for a keyframe (already collapsed and throttled).
    KeyframeRequest {
        /// The publisher to ask.
        publisher: PeerId,
        /// The publisher's SSRC of the video track.
        ssrc: u32,
        /// PLI or FIR, as the publisher negotiated.
        kind: KeyframeRequestKind,
        /// The FIR command sequence number (0 for PLI).
        fir_seq: u8,
    },
    /// An RTCP sender report for one subscriber's down track.
    SenderReport {
        /// The viewer to send it to.
        subscriber: PeerId,
        /// The report, with the down track's SSRC, clock mapping and counts.
        report: SenderReport,
    },
    /// A subscriber's down track cannot carry the publisher's codec (the viewer did not
    /// negotiate it); nothing is forwarded on that track.
    CodecMismatch {
        /// The viewer that cannot receive it.
        subscriber: PeerId,
        /// The publisher's codec.
        codec: Codec,
    },
}

/// One viewer and its down tracks (at most one per kind).
#[derive(Debug)]
struct Subscriber {
    id: PeerId,
    audio: Option<DownTrack>,
    video: Option<DownTrack>,
    /// Transport-wide congestion control, when the viewer negotiated it.
    twcc: Option<TransportCc>,
}

impl Subscriber {
    fn track_mut(&mut self, kind: MediaKind) -> Option<&mut DownTrack> {
        match kind {
            MediaKind::Audio => self.audio.as_mut(),
            MediaKind::Video => self.video.as_mut(),
        }
    }

    fn tracks_mut(&mut self) -> impl Iterator<Item = &mut DownTrack> {
        self.audio.iter_mut().chain(self.video.iter_mut())
    }

    fn take_track(&mut self, kind: MediaKind) -> Option<DownTrack> {
        match kind {
            MediaKind::Audio => self.audio.take(),
            MediaKind::Video => self.video.take(),
        }
    }

    /// Gives a packet leaving for this viewer its transport-wide sequence number.
    fn stamp(twcc: &mut Option<TransportCc>, packet: &mut Packet, now: Instant) {
        if let Some(twcc) = twcc {
            twcc.stamp(packet, packet.payload.len() + RTP_OVERHEAD, now);
        }
    }
}

/// Bytes a forwarded packet carries besides its payload (RTP header, extensions, SRTP tag),
/// roughly, for the transport-wide send history.
const RTP_OVERHEAD: usize = 40;

/// One published stream and its viewers.
#[derive(Debug, Default)]
pub struct Stream {
    publisher: Option<PeerId>,
    tracks: Vec<PublishedTrack>,
    /// Shared state per published track, same index as `tracks`.
    up_tracks: Vec<UpTrack>,
    subscribers: Vec<Subscriber>,
    /// Subscriber id -> index in `subscribers`, for control-path lookups (NACK, PLI,
    /// removal); the packet path walks the Vec.
    index: HashMap<PeerId, usize>,
    /// Per track (same index as `tracks`): whether some viewer waits for one of its
    /// keyframes (to start, or to switch layers). Recomputed on every change of who gets what.
    waiting: Vec<bool>,
    next_sender_report: Option<Instant>,
    /// When some viewer's link probe next needs the clock.
    next_probe: Option<Instant>,
    outputs: VecDeque<Output>,
    stats: StreamStats,
    rate: RateWindow,
    /// Where the payloads of RTX packets (retransmissions, probes) are written.
    rtx_buffer: RtxBuffer,
}

impl Stream {
    /// An empty stream: no publisher, no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `publisher` the stream's publisher with `tracks`, replacing any previous one
    /// (reconnect or takeover; calling it again for the same publisher also starts a new
    /// generation). Subscribers stay, wait for the new publisher's first keyframe, and
    /// then continue their numbering where it stopped.
    ///
    /// Only the first track of each kind is used, and a track whose codec is not of its
    /// kind is ignored.
    pub fn set_publisher(&mut self, publisher: PeerId, tracks: Vec<PublishedTrack>, now: Instant) {
        let mut kept: Vec<PublishedTrack> = Vec::with_capacity(2);
        for track in tracks {
            if track.codec.kind() != track.kind {
                tracing::warn!(
                    publisher,
                    ?track,
                    "ignoring track whose codec is not of its kind"
                );
            } else if !accepts(&kept, &track) {
                tracing::warn!(
                    publisher,
                    ?track,
                    "ignoring a second track of the same kind"
                );
            } else {
                kept.push(track);
            }
        }
        self.up_tracks = kept.iter().map(UpTrack::new).collect();
        self.tracks = kept;
        self.publisher = Some(publisher);
        self.next_sender_report = None;
        self.rebind_subscribers(now);
        self.request_awaited_keyframes();
        self.run_timers(now);
    }

    /// Adds one track to the current publisher's, without disturbing the others: a simulcast
    /// layer whose first packet came after the stream went live. Viewers on `Auto` may move
    /// to it. Ignored like in [`Self::set_publisher`] when it does not fit.
    pub fn add_track(&mut self, publisher: PeerId, track: PublishedTrack, now: Instant) {
        if self.publisher != Some(publisher)
            || track.codec.kind() != track.kind
            || !accepts(&self.tracks, &track)
        {
            return;
        }
        let index = self.tracks.len();
        self.up_tracks.push(UpTrack::new(&track));
        self.tracks.push(track);
        if self.tracks[index].kind == MediaKind::Video {
            for position in 0..self.subscribers.len() {
                self.select_layer(position, now);
            }
        } else {
            self.rebind_subscribers(now);
        }
        self.request_awaited_keyframes();
        self.run_timers(now);
    }

    /// Removes the publisher if `publisher` is the current one; subscribers stay and
    /// resume when a new publisher is set.
    pub fn remove_publisher(&mut self, publisher: PeerId, now: Instant) {
        if self.publisher != Some(publisher) {
            return;
        }
        self.publisher = None;
        self.tracks.clear();
        self.up_tracks.clear();
        self.next_sender_report = None;
        self.rebind_subscribers(now);
    }

    /// The current publisher, if any.
    pub fn publisher(&self) -> Option<PeerId> {
        self.publisher
    }

    /// The current publisher's tracks.
    pub fn tracks(&self) -> &[PublishedTrack] {
        &self.tracks
    }

    /// The video layers, smallest first: `(rid, ssrc, incoming bitrate at now)`. One entry
    /// without a RID when the publisher does not simulcast.
    pub fn video_layers(&self, now: Instant) -> Vec<(Option<String>, u32, u64)> {
        self.ranked_layers(now)
            .into_iter()
            .map(|index| {
                let track = &self.tracks[index];
                (
                    track.rid.clone(),
                    track.ssrc,
                    self.up_tracks[index].rate.bitrate_bps(now),
                )
            })
            .collect()
    }

    /// The SSRC of the largest video layer (what a recording keeps) at `now`.
    pub fn top_video_ssrc(&self, now: Instant) -> Option<u32> {
        self.ranked_layers(now)
            .last()
            .map(|&index| self.tracks[index].ssrc)
    }

    /// The simulcast layer a subscriber is getting (0 = smallest, ranked as of `now`) and how
    /// many there are.
    pub fn subscriber_layer(&self, subscriber: PeerId, now: Instant) -> Option<(usize, usize)> {
        let position = *self.index.get(&subscriber)?;
        let layer = self.subscribers[position].video.as_ref()?.layer?;
        let ranked = self.ranked_layers(now);
        let rank = ranked.iter().position(|&index| index == layer)?;
        Some((rank, ranked.len()))
    }

    /// The viewer's quality choice (a pinned layer, or `Auto`); switches at the next keyframe
    /// of the layer it now gets.
    pub fn set_quality(&mut self, subscriber: PeerId, quality: Quality, now: Instant) {
        let Some(&position) = self.index.get(&subscriber) else {
            return;
        };
        let Some(video) = self.subscribers[position].video.as_mut() else {
            return;
        };
        video.quality = quality;
        self.reselect(position, now);
    }

    /// A viewer's receiver report for its down track `media_ssrc`: its loss feeds the
    /// viewer's bandwidth estimate, which may move it to another layer.
    pub fn on_receiver_report(
        &mut self,
        subscriber: PeerId,
        media_ssrc: u32,
        fraction_lost: u8,
        now: Instant,
    ) {
        let Some(&position) = self.index.get(&subscriber) else {
            return;
        };
        let ceiling = self.layer_ceiling(now);
        let Some(video) = self.subscribers[position].video.as_mut() else {
            return;
        };
        if video.ssrc() != media_ssrc {
            return;
        }
        if BandwidthEstimator::loss_fails_probe(fraction_lost)
            && matches!(video.probe, Probe::Running { .. })
        {
            // Loss while probing says the link cannot carry the probe, not that it cannot
            // carry the layer the viewer is on.
            self.fail_probe(position, "loss", now, |bwe, sending, probed| {
                bwe.on_probe_loss(fraction_lost, sending, probed, now)
            });
            return;
        }
        let sending = sending_bps(&self.up_tracks, video, now);
        if video
            .bwe
            .on_receiver_report(fraction_lost, sending, ceiling, now)
        {
            tracing::debug!(
                subscriber,
                fraction_lost,
                sending,
                estimate = ?video.bwe.estimate(),
                "viewer bandwidth estimate"
            );
            self.reselect(position, now);
        }
    }

    /// A viewer's transport-wide congestion control feedback: the delay trend of its link
    /// feeds its bandwidth estimate, which may move it to a smaller layer before its link's
    /// queue overflows.
    pub fn on_transport_feedback(
        &mut self,
        subscriber: PeerId,
        feedback: &TransportLayerCc,
        now: Instant,
    ) {
        let Some(&position) = self.index.get(&subscriber) else {
            return;
        };
        let entry = &mut self.subscribers[position];
        let (Some(twcc), Some(video)) = (entry.twcc.as_mut(), entry.video.as_mut()) else {
            return;
        };
        let verdict = twcc.on_feedback(feedback, now);
        tracing::trace!(subscriber, ?verdict, "transport feedback");
        let sending = sending_bps(&self.up_tracks, video, now);
        // What got through for video: the feedback acknowledges the viewer's audio too.
        let audio = self
            .tracks
            .iter()
            .zip(&self.up_tracks)
            .filter(|(track, _)| track.kind == MediaKind::Audio)
            .map(|(_, up)| up.rate.bitrate_bps(now))
            .sum::<u64>();
        let received = verdict
            .received_bps
            .map(|received| received.saturating_sub(audio));
        if verdict.usage == Usage::Over && matches!(video.probe, Probe::Running { .. }) {
            self.fail_probe(position, "the link queues", now, |bwe, sending, probed| {
                bwe.on_probe_queue(received, sending, probed, now)
            });
            return;
        }
        if video.bwe.on_delay(verdict.usage, received, sending, now) {
            tracing::debug!(
                subscriber,
                ?verdict,
                sending,
                estimate = ?video.bwe.estimate(),
                "viewer link queueing: bandwidth estimate down"
            );
            self.reselect(position, now);
        }
    }

    /// A viewer's REMB (its own estimate of what it can receive, all tracks together).
    pub fn on_remb(&mut self, subscriber: PeerId, bitrate_bps: u64, now: Instant) {
        let Some(&position) = self.index.get(&subscriber) else {
            return;
        };
        let Some(video) = self.subscribers[position].video.as_mut() else {
            return;
        };
        if video.bwe.on_remb(bitrate_bps) {
            tracing::debug!(subscriber, bitrate_bps, "viewer REMB");
            self.reselect(position, now);
        }
    }

    /// Adds a viewer whose transport is connected (DTLS up), with its down tracks (at most
    /// one per kind). Audio flows at once; video waits for a keyframe, which is requested
    /// from the publisher. Adding an existing subscriber replaces it.
    pub fn add_subscriber(
        &mut self,
        subscriber: PeerId,
        tracks: Vec<DownTrackConfig>,
        now: Instant,
    ) {
        let mut previous = self.take_subscriber(subscriber);
        let twcc = tracks
            .iter()
            .find_map(|config| TransportCc::negotiated_id(&config.extensions))
            .map(|id| TransportCc::new(id, now));
        let mut entry = Subscriber {
            id: subscriber,
            audio: None,
            video: None,
            twcc,
        };
        for config in tracks {
            let slot = match config.kind {
                MediaKind::Audio => &mut entry.audio,
                MediaKind::Video => &mut entry.video,
            };
            if slot.is_some() {
                tracing::warn!(
                    subscriber,
                    ?config,
                    "ignoring a second down track of the same kind"
                );
                continue;
            }
            let kind = config.kind;
            let mut down_track = DownTrack::new(config);
            if let Some(old) = previous.as_mut().and_then(|old| old.take_track(kind)) {
                down_track.continue_from(old);
            }
            *slot = Some(down_track);
        }
        self.index.insert(subscriber, self.subscribers.len());
        self.subscribers.push(entry);
        self.bind_subscriber(self.subscribers.len() - 1, now);
        self.refresh_waiting();
        self.request_awaited_keyframes();
        self.run_timers(now);
    }

    /// Removes a viewer; unknown ids are ignored.
    pub fn remove_subscriber(&mut self, subscriber: PeerId) {
        self.take_subscriber(subscriber);
    }

    fn take_subscriber(&mut self, subscriber: PeerId) -> Option<Subscriber> {
        let position = self.index.remove(&subscriber)?;
        let taken = self.subscribers.swap_remove(position);
        if let Some(moved) = self.subscribers.get(position) {
            self.index.insert(moved.id, position);
        }
        self.refresh_waiting();
        Some(taken)
    }

    /// How many viewers the stream has.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// One RTP packet from the publisher, decrypted. Packets from anyone but the current
    /// publisher, or on an SSRC it did not publish, are ignored.
    pub fn on_rtp(&mut self, publisher: PeerId, packet: Packet, now: Instant) {
        if self.publisher != Some(publisher) {
            tracing::trace!(publisher, "rtp from a peer that is not the publisher");
            return;
        }
        let Some(index) = self
            .tracks
            .iter()
            .position(|track| track.ssrc == packet.header.ssrc)
        else {
            tracing::trace!(
                publisher,
                ssrc = packet.header.ssrc,
                "rtp on an unknown ssrc"
            );
            return;
        };
        let bytes = (packet.header.marshal_size() + packet.payload.len()) as u64;
        self.stats.packets_in += 1;
        self.stats.bytes_in += bytes;
        self.rate.add(now, bytes);

        let track = &self.tracks[index];
        let up = &mut self.up_tracks[index];
        up.rate.add(now, bytes);
        let Some(at) = up.unwrapper.unwrap(packet.header.sequence_number) else {
            tracing::trace!(
                publisher,
                seq = packet.header.sequence_number,
                "rtp too old"
            );
            return;
        };
        if packet.payload.is_empty() {
            up.compactor.drop_padding(at);
            self.stats.padding_dropped += 1;
            return;
        }
        let Some(compacted) = up.compactor.compact(at.extended) else {
            return;
        };
        if !up.cache.is_new(compacted) {
            // Seen before (resent by the publisher, or doubled on the way), or too old for the
            // cache to tell: forwarded again, it would reach a viewer with a sequence number
            // it was already sent, under a new transport-wide number.
            self.stats.duplicates_dropped += 1;
            return;
        }
        let kind = track.kind;
        let can_start = is_keyframe_start(track.codec, &packet.payload);
        let descriptor = if track.codec == Codec::Vp8 {
            vp8::parse(&packet.payload)
        } else {
            None
        };
        if let Some(tid) = descriptor.and_then(|descriptor| descriptor.tid) {
            let before = up.temporal_layers;
            up.on_temporal(tid, bytes, now);
            if up.temporal_layers != before {
                tracing::debug!(
                    ssrc = track.ssrc,
                    rid = ?track.rid,
                    layers = up.temporal_layers,
                    "publisher sends VP8 temporal layers"
                );
            }
        }
        if can_start && kind == MediaKind::Video {
            up.keyframes.on_keyframe();
        }
        // Whether a viewer started or switched layers here (who waits for what changed).
        let mut moved = false;
        for subscriber in &mut self.subscribers {
            let down_track = match kind {
                MediaKind::Audio => subscriber.audio.as_mut(),
                MediaKind::Video => subscriber.video.as_mut(),
            };
            let Some(down_track) = down_track else {
                continue;
            };
            if down_track.layer != Some(index) {
                // Another layer's packet: for this viewer only if it switches here.
                if !(can_start && down_track.target == Some(index)) {
                    continue;
                }
                down_track.bind(Some((index, track)));
            }
            let was_waiting = kind == MediaKind::Video && down_track.is_waiting();
            if let Some(mut out) =
                down_track.forward(compacted, &packet, can_start, descriptor.as_ref(), now)
            {
                Subscriber::stamp(&mut subscriber.twcc, &mut out, now);
                moved |= was_waiting;
                self.stats.packets_out += 1;
                self.outputs.push_back(Output::Rtp {
                    subscriber: subscriber.id,
                    kind,
                    packet: out,
                });
            }
        }
        up.cache.insert(compacted, packet);
        if moved {
            self.refresh_waiting();
        }
        self.run_timers(now);
    }

    /// The publisher's RTCP sender report for the track with `ssrc`: the NTP↔RTP mapping
    /// each viewer's sender reports are derived from.
    pub fn on_sender_report(
        &mut self,
        publisher: PeerId,
        ssrc: u32,
        ntp_time: u64,
        rtp_time: u32,
        now: Instant,
    ) {
        if self.publisher != Some(publisher) {
            return;
        }
        let Some(index) = self.tracks.iter().position(|track| track.ssrc == ssrc) else {
            return;
        };
        self.up_tracks[index].on_sender_report(ntp_time, rtp_time, now);
        if self.next_sender_report.is_none() {
            self.next_sender_report = Some(now);
        }
        self.run_timers(now);
    }

    /// A viewer's NACK for its down track `media_ssrc`; `lost` are sequence numbers in the
    /// viewer's numbering. Answered from the track's NACK cache over the viewer's RTX stream.
    /// A viewer without RTX is never sent a packet again (that would reuse its SRTP nonce):
    /// when it lost a video packet it was sent, it gets a keyframe, asked for like its PLIs.
    pub fn on_nack(&mut self, subscriber: PeerId, media_ssrc: u32, lost: &[u16], now: Instant) {
        let Some(&position) = self.index.get(&subscriber) else {
            return;
        };
        let entry = &mut self.subscribers[position];
        let Some(down_track) = entry
            .audio
            .iter_mut()
            .chain(entry.video.iter_mut())
            .find(|dt| dt.ssrc() == media_ssrc)
        else {
            return;
        };
        let kind = down_track.kind();
        let Some(index) = down_track.layer else {
            return;
        };
        let cache = &self.up_tracks[index].cache;
        if !down_track.has_rtx() {
            self.stats.nacks_unanswered += lost.len() as u64;
            let repair =
                kind == MediaKind::Video && lost.iter().any(|&seq| down_track.was_sent(seq, cache));
            if repair {
                let layer = down_track.target.unwrap_or(index);
                self.up_tracks[layer].keyframes.request();
                self.run_timers(now);
            }
            return;
        }
        for &seq in lost {
            if let Some(mut packet) = down_track.retransmit(seq, cache, &mut self.rtx_buffer, now) {
                Subscriber::stamp(&mut entry.twcc, &mut packet, now);
                self.stats.nacks_answered += 1;
                self.stats.packets_out += 1;
                self.outputs.push_back(Output::Rtp {
                    subscriber,
                    kind,
                    packet,
                });
            }
        }
    }

    /// A keyframe request from inside the server (the recorder lost a packet or fell behind),
    /// collapsed and throttled with the viewers' requests.
    pub fn request_keyframe(&mut self, now: Instant) {
        if let Some(&top) = self.ranked_layers(now).last() {
            self.up_tracks[top].keyframes.request();
        }
        self.run_timers(now);
    }

    /// Like [`Self::request_keyframe`], for the video track (simulcast layer) with `ssrc`: the
    /// one a recording keeps. Falls back to the largest layer for an unknown SSRC.
    pub fn request_keyframe_on(&mut self, ssrc: u32, now: Instant) {
        match self
            .tracks
            .iter()
            .position(|t| t.kind == MediaKind::Video && t.ssrc == ssrc)
        {
            Some(index) => {
                self.up_tracks[index].keyframes.request();
                self.run_timers(now);
            }
            None => self.request_keyframe(now),
        }
    }

    /// A viewer's PLI or FIR: asks the publisher for a keyframe (collapsed and throttled).
    pub fn on_keyframe_request(&mut self, subscriber: PeerId, now: Instant) {
        let Some(&position) = self.index.get(&subscriber) else {
            return;
        };
        // A viewer that cannot receive the publisher's video has nothing to repair.
        let Some(video) = self.subscribers[position]
            .video
            .as_ref()
            .filter(|video| video.can_receive())
        else {
            return;
        };
        if let Some(layer) = video.target.or(video.layer) {
            self.up_tracks[layer].keyframes.request();
        }
        self.run_timers(now);
    }

    /// Runs timers due at `now`: repeated keyframe requests and sender reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.run_timers(now);
    }

    /// When [`Self::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keyframe = self
            .up_tracks
            .iter()
            .zip(&self.waiting)
            .filter_map(|(up, &waiting)| up.keyframes.poll_timeout(waiting))
            .min();
        [keyframe, self.next_sender_report, self.next_probe]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next thing for the engine to do; drain after every call above.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The stream's counters, and its incoming bitrate at `now`.
    pub fn stats(&self, now: Instant) -> StreamStats {
        let incoming_bitrate_bps = self.rate.bitrate_bps(now);
        StreamStats {
            incoming_bitrate_bps,
            ..self.stats
        }
    }

    /// The video tracks (simulcast layers) as indices into `tracks`, smallest first: by
    /// measured bitrate, then by RID convention, then in the order they were published.
    fn ranked_layers(&self, now: Instant) -> Vec<usize> {
        let mut layers: Vec<(u64, u8, usize)> = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(_, track)| track.kind == MediaKind::Video)
            .map(|(index, track)| {
                (
                    self.up_tracks[index].rate.bitrate_bps(now),
                    track.rid.as_deref().map_or(1, rid_rank),
                    index,
                )
            })
            .collect();
        // Until every layer has been measured, the names decide.
        if layers.iter().any(|(bps, _, _)| *bps == 0) {
            layers.sort_by_key(|&(_, rank, index)| (rank, index));
        } else {
            layers.sort_by_key(|&(bps, rank, index)| (bps, rank, index));
        }
        layers.into_iter().map(|(_, _, index)| index).collect()
    }

    /// The most any viewer can use: the top layer's bitrate and a margin.
    fn layer_ceiling(&self, now: Instant) -> u64 {
        self.ranked_layers(now)
            .last()
            .map_or(0, |&top| self.up_tracks[top].rate.bitrate_bps(now) * 3 / 2)
    }

    /// Binds a subscriber's down tracks to the current publisher's tracks: audio to the audio
    /// track, video to the layer it should get. Reports codec mismatches.
    fn bind_subscriber(&mut self, position: usize, now: Instant) {
        let audio = self.tracks.iter().position(|t| t.kind == MediaKind::Audio);
        let video = self.choose_layer(position, now);
        let subscriber = &mut self.subscribers[position];
        let id = subscriber.id;
        for down_track in subscriber.tracks_mut() {
            let index = match down_track.kind() {
                MediaKind::Audio => audio,
                MediaKind::Video => video,
            };
            if let Some(codec) = down_track.bind(index.map(|i| (i, &self.tracks[i]))) {
                self.outputs.push_back(Output::CodecMismatch {
                    subscriber: id,
                    codec,
                });
            }
        }
    }

    /// The video track (index) a subscriber should get now, if there is video.
    fn choose_layer(&self, position: usize, now: Instant) -> Option<usize> {
        let ranked = self.ranked_layers(now);
        let video = self.subscribers[position].video.as_ref()?;
        let bitrates: Vec<u64> = ranked
            .iter()
            .map(|&index| self.up_tracks[index].rate.bitrate_bps(now))
            .collect();
        let current = video
            .layer
            .and_then(|layer| ranked.iter().position(|&index| index == layer));
        let rank = choose_layer(video.quality, &bitrates, video.bwe.estimate(), current);
        ranked.get(rank).copied()
    }

    /// The highest temporal layer a subscriber should get of the video track `layer`: all of
    /// them, unless it is on `Auto` and the smallest layer is already more than its estimate
    /// carries, and the publisher tags temporal layers.
    fn choose_temporal(&self, position: usize, layer: Option<usize>, now: Instant) -> u8 {
        let (Some(video), Some(layer)) = (self.subscribers[position].video.as_ref(), layer) else {
            return vp8::ALL_LAYERS;
        };
        if video.quality != Quality::Auto || self.ranked_layers(now).first() != Some(&layer) {
            return vp8::ALL_LAYERS;
        }
        let up = &self.up_tracks[layer];
        let cumulative: Vec<u64> = (0..up.temporal_layers)
            .map(|tid| up.temporal_bps(tid as u8, now))
            .collect();
        let current = Some(video.temporal.target).filter(|&tid| tid != vp8::ALL_LAYERS);
        choose_temporal(&cumulative, video.bwe.estimate(), current).unwrap_or(vp8::ALL_LAYERS)
    }

    /// Re-decides a subscriber's layer: a viewer not started yet is simply bound to the new
    /// choice; one already watching keeps its layer until the new one's next keyframe.
    fn select_layer(&mut self, position: usize, now: Instant) {
        let choice = self.choose_layer(position, now);
        let temporal = self.choose_temporal(position, choice, now);
        let ranked = self.ranked_layers(now);
        let rank = |layer: Option<usize>| layer.and_then(|l| ranked.iter().position(|&r| r == l));
        let subscriber = &mut self.subscribers[position];
        let id = subscriber.id;
        let twcc = subscriber.twcc.is_some();
        let Some(video) = subscriber.video.as_mut() else {
            return;
        };
        // A probe needs the viewer's transport feedback to judge it and its RTX stream to
        // carry it; a viewer without either moves up on its estimate alone.
        let probes = twcc && video.has_rtx();
        if let Probe::Running { layer, .. } = video.probe
            && Some(layer) != choice
        {
            video.probe = Probe::Idle;
        }
        if video.temporal.target != temporal {
            tracing::debug!(subscriber = id, temporal, "temporal layers");
            video.temporal.target = temporal;
        }
        if video.layer == choice {
            video.target = None;
        } else if video.layer.is_none() || video.is_waiting() {
            if let Some(codec) = video.bind(choice.map(|i| (i, &self.tracks[i]))) {
                self.outputs.push_back(Output::CodecMismatch {
                    subscriber: id,
                    codec,
                });
            }
        } else if let Some(up) = choice.filter(|&up| {
            probes
                && video.quality == Quality::Auto
                && rank(Some(up)) > rank(video.layer)
                && !video.probe.passed(up, now)
        }) {
            // Moving up on the estimate: only once the link has carried the difference.
            video.target = None;
            if !video.probe.running_for(up) {
                let extra = self.up_tracks[up]
                    .rate
                    .bitrate_bps(now)
                    .saturating_sub(sending_bps(&self.up_tracks, video, now))
                    .max(MIN_PROBE_BPS);
                tracing::debug!(subscriber = id, from = ?video.layer, to = up, extra, "probing before moving up");
                video.probe = Probe::start(up, extra, now);
                self.next_probe = Some(self.next_probe.map_or(now, |due| due.min(now)));
            }
        } else {
            if video.target != choice {
                tracing::debug!(subscriber = id, from = ?video.layer, to = ?choice, "switching layers at the next keyframe");
            }
            video.target = choice;
        }
        self.refresh_waiting();
    }

    /// Ends a viewer's running probe that its link did not carry (`reason`); `lower` tells
    /// its estimator, given the viewer's layer's rate and the rate probed, and says whether
    /// the estimate changed.
    fn fail_probe(
        &mut self,
        position: usize,
        reason: &'static str,
        now: Instant,
        lower: impl FnOnce(&mut BandwidthEstimator, u64, u64) -> bool,
    ) {
        let subscriber = &mut self.subscribers[position];
        let id = subscriber.id;
        let Some(video) = subscriber.video.as_mut() else {
            return;
        };
        let sending = sending_bps(&self.up_tracks, video, now);
        let probed = sending + video.probe.extra_bps();
        video.probe = Probe::Idle;
        tracing::debug!(
            subscriber = id,
            probed,
            reason,
            "probe failed; staying on this layer"
        );
        if lower(&mut video.bwe, sending, probed) {
            self.reselect(position, now);
        }
    }

    /// Sends the running probes' packets that are due (RTX copies of recent packets); a probe
    /// that ran its course lets its viewer move up.
    fn run_probes(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut passed = Vec::new();
        for (position, subscriber) in self.subscribers.iter_mut().enumerate() {
            let Some(video) = subscriber.video.as_mut() else {
                continue;
            };
            match video.probe.tick(now) {
                Tick::Idle => {}
                Tick::Passed => passed.push(position),
                Tick::Send { budget, cursor } => {
                    let Some(layer) = video.layer else {
                        video.probe = Probe::Idle;
                        continue;
                    };
                    let cache = &self.up_tracks[layer].cache;
                    let (mut bytes, mut packets, mut tried) = (0usize, 0usize, 0u64);
                    while (bytes as f64) < budget
                        && packets < MAX_PER_TICK
                        && tried < 2 * PROBE_WINDOW
                    {
                        let back = (cursor + tried) % PROBE_WINDOW;
                        tried += 1;
                        let Some(mut packet) = video.probe_copy(back, cache, &mut self.rtx_buffer)
                        else {
                            continue;
                        };
                        bytes += packet.payload.len() + RTP_OVERHEAD;
                        packets += 1;
                        Subscriber::stamp(&mut subscriber.twcc, &mut packet, now);
                        self.stats.packets_out += 1;
                        self.outputs.push_back(Output::Rtp {
                            subscriber: subscriber.id,
                            kind: MediaKind::Video,
                            packet,
                        });
                    }
                    video.probe.sent(bytes, tried);
                }
            }
            if let Some(due) = video.probe.due() {
                next = Some(next.map_or(due, |earlier| earlier.min(due)));
            }
        }
        self.next_probe = next;
        for &position in &passed {
            tracing::debug!(
                subscriber = self.subscribers[position].id,
                "probe passed: moving up"
            );
            self.select_layer(position, now);
        }
        if !passed.is_empty() {
            self.request_awaited_keyframes();
        }
    }

    /// Re-decides one subscriber's layer and asks for the keyframes that now matter.
    fn reselect(&mut self, position: usize, now: Instant) {
        self.select_layer(position, now);
        self.request_awaited_keyframes();
        self.run_timers(now);
    }

    /// Points every down track at the current publisher's tracks (a new generation).
    fn rebind_subscribers(&mut self, now: Instant) {
        for position in 0..self.subscribers.len() {
            self.bind_subscriber(position, now);
        }
        self.refresh_waiting();
    }

    /// Recomputes which tracks some viewer waits for a keyframe of.
    fn refresh_waiting(&mut self) {
        self.waiting.clear();
        self.waiting.resize(self.tracks.len(), false);
        for subscriber in &self.subscribers {
            if let Some(video) = &subscriber.video {
                for (index, waiting) in self.waiting.iter_mut().enumerate() {
                    *waiting |= video.needs_keyframe_of(index);
                }
            }
        }
    }

    /// Asks for a keyframe on every track some viewer waits for.
    fn request_awaited_keyframes(&mut self) {
        for (up, &waiting) in self.up_tracks.iter_mut().zip(&self.waiting) {
            if waiting {
                up.keyframes.request();
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        if self.next_probe.is_some_and(|due| now >= due) {
            self.run_probes(now);
        }
        if let Some(publisher) = self.publisher {
            for (index, up) in self.up_tracks.iter_mut().enumerate() {
                let waiting = self.waiting.get(index).copied().unwrap_or(false);
                if let Some(request) = up.keyframes.poll(now, waiting) {
                    self.stats.keyframe_requests_sent += 1;
                    self.outputs.push_back(Output::KeyframeRequest {
                        publisher,
                        ssrc: self.tracks[index].ssrc,
                        kind: request.kind,
                        fir_seq: request.fir_seq,
                    });
                }
            }
        }
        if let Some(due) = self.next_sender_report
            && now >= due
        {
            self.next_sender_report = Some(now + SENDER_REPORT_INTERVAL);
            for (index, (track, up)) in self.tracks.iter().zip(&self.up_tracks).enumerate() {
                let Some(clock) = &up.clock else {
                    continue;
                };
                for subscriber in &mut self.subscribers {
                    let Some(down_track) = subscriber
                        .track_mut(track.kind)
                        .filter(|down_track| down_track.layer == Some(index))
                    else {
                        continue;
                    };
                    if let Some(report) = down_track.sender_report(clock, now) {
                        self.outputs.push_back(Output::SenderReport {
                            subscriber: subscriber.id,
                            report,
                        });
                    }
                }
            }
        }
    }
}

/// Whether `track` may join `kept`: one audio track; one video track, or up to three
/// simulcast layers with distinct RIDs.
fn accepts(kept: &[PublishedTrack], track: &PublishedTrack) -> bool {
    let same_kind: Vec<&PublishedTrack> = kept.iter().filter(|t| t.kind == track.kind).collect();
    if same_kind.is_empty() {
        return true;
    }
    track.kind == MediaKind::Video
        && same_kind.len() < MAX_LAYERS
        && track.rid.is_some()
        && same_kind
            .iter()
            .all(|t| t.rid.is_some() && t.rid != track.rid && t.codec == track.codec)
}

/// What a viewer's video is being sent now: its layer's bitrate, or the share of the temporal
/// layers it gets.
fn sending_bps(up_tracks: &[UpTrack], video: &DownTrack, now: Instant) -> u64 {
    let Some(up) = video.layer.map(|index| &up_tracks[index]) else {
        return 0;
    };
    let current = video.temporal.current();
    if current == vp8::ALL_LAYERS || usize::from(current) + 1 >= up.temporal_layers {
        up.rate.bitrate_bps(now)
    } else {
        up.temporal_bps(current, now)
    }
}

/// A probe sends at least this much extra (the next layer's bitrate may not be measured yet).
const MIN_PROBE_BPS: u64 = 100_000;
/// A probe copies the viewer's last this many packets in turn.
const PROBE_WINDOW: u64 = 16;

/// Simulcast layers kept at most.
const MAX_LAYERS: usize = 3;

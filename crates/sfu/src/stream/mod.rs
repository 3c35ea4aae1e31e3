//! A stream: one publisher (at most one audio track and one video track, the video possibly
//! as two or three simulcast layers) fanned out to any number of subscribers. This is the
//! sans-IO state machine the media engine drives: it feeds decrypted RTP and RTCP in with the
//! current time, calls `handle_timeout` when `poll_timeout` says so, and drains `poll_output`
//! after every call.
//!
//! It does not own sockets, encryption, RTCP parsing or SDP: those are the engine's. Its state
//! is split by owner:
//!
//! - `publication.rs`: the publisher, its tracks and each track's shared state ([`UpTrack`]),
//!   the video layers ranked;
//! - `subscribers.rs`: the viewers and their down tracks, by position and by id;
//! - `layer_choice.rs`: each viewer's choice of track, simulcast and temporal layer, and the
//!   link probe before it moves up (the viewer's own state, reading the publication);
//! - `link_estimate.rs`: what each viewer's RTCP says of its link (its bandwidth estimate);
//! - `keyframe_waits.rs`: which tracks some viewer waits for a keyframe of;
//! - this file: the flows between them (RTP in and out, RTCP from viewers, timers) and what
//!   the engine is asked to do ([`Output`]).
//!
//! [`UpTrack`]: crate::track::UpTrack

mod cached_start;
mod keyframe_waits;
mod layer_choice;
mod link_estimate;
mod publication;
mod subscribers;

use std::collections::VecDeque;
use std::time::Instant;

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtp::Packet;
use rtc::shared::marshal::MarshalSize;

use crate::codec::{Codec, KeyframeRequestKind, MediaKind};
use crate::down_track::DownTrackConfig;
use crate::keyframe::is_keyframe_start;
use crate::layers::Quality;
use crate::rtx::RtxBuffer;
use crate::sender_report::SENDER_REPORT_INTERVAL;
use crate::stats::{RateWindow, StreamStats};
use crate::track::PublishedTrack;
use crate::vp8;

use keyframe_waits::KeyframeWaits;
use publication::Publication;
use subscribers::{Subscriber, Subscribers};

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

/// One published stream and its viewers.
#[derive(Debug, Default)]
pub struct Stream {
    publication: Publication,
    subscribers: Subscribers,
    /// Per track: whether some viewer waits for one of its keyframes.
    waits: KeyframeWaits,
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
        self.publication.replace(publisher, tracks);
        self.next_sender_report = None;
        self.rebind_subscribers(now);
        self.request_awaited_keyframes();
        self.run_timers(now);
    }

    /// Adds one track to the current publisher's, without disturbing the others: a simulcast
    /// layer whose first packet came after the stream went live. Viewers on `Auto` may move
    /// to it. Ignored like in [`Self::set_publisher`] when it does not fit.
    pub fn add_track(&mut self, publisher: PeerId, track: PublishedTrack, now: Instant) {
        let Some(index) = self.publication.add(publisher, track) else {
            return;
        };
        if self.publication.tracks[index].kind == MediaKind::Video {
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
        if !self.publication.remove(publisher) {
            return;
        }
        self.next_sender_report = None;
        self.rebind_subscribers(now);
    }

    /// The current publisher, if any.
    pub fn publisher(&self) -> Option<PeerId> {
        self.publication.publisher
    }

    /// The current publisher's tracks.
    pub fn tracks(&self) -> &[PublishedTrack] {
        &self.publication.tracks
    }

    /// The video layers, smallest first: `(rid, ssrc, incoming bitrate at now)`. One entry
    /// without a RID when the publisher does not simulcast.
    pub fn video_layers(&self, now: Instant) -> Vec<(Option<String>, u32, u64)> {
        let publication = &self.publication;
        publication
            .ranked_layers(now)
            .into_iter()
            .map(|index| {
                let track = &publication.tracks[index];
                (
                    track.rid.clone(),
                    track.ssrc,
                    publication.up_tracks[index].rate.bitrate_bps(now),
                )
            })
            .collect()
    }

    /// The SSRC of the largest video layer (what a recording keeps) at `now`.
    pub fn top_video_ssrc(&self, now: Instant) -> Option<u32> {
        self.publication
            .ranked_layers(now)
            .last()
            .map(|&index| self.publication.tracks[index].ssrc)
    }

    /// The simulcast layer a subscriber is getting (0 = smallest, ranked as of `now`) and how
    /// many there are.
    pub fn subscriber_layer(&self, subscriber: PeerId, now: Instant) -> Option<(usize, usize)> {
        let position = self.subscribers.position(subscriber)?;
        let layer = self.subscribers[position].video.as_ref()?.layer?;
        let ranked = self.publication.ranked_layers(now);
        let rank = ranked.iter().position(|&index| index == layer)?;
        Some((rank, ranked.len()))
    }

    /// The viewer's quality choice (a pinned layer, or `Auto`); switches at the next keyframe
    /// of the layer it now gets.
    pub fn set_quality(&mut self, subscriber: PeerId, quality: Quality, now: Instant) {
        let Some(position) = self.subscribers.position(subscriber) else {
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
        let Some(position) = self.subscribers.position(subscriber) else {
            return;
        };
        if self.subscribers[position].on_receiver_report(
            &self.publication,
            media_ssrc,
            fraction_lost,
            now,
        ) {
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
        let Some(position) = self.subscribers.position(subscriber) else {
            return;
        };
        if self.subscribers[position].on_transport_feedback(&self.publication, feedback, now) {
            self.reselect(position, now);
        }
    }

    /// A viewer's REMB (its own estimate of what it can receive, all tracks together).
    pub fn on_remb(&mut self, subscriber: PeerId, bitrate_bps: u64, now: Instant) {
        let Some(position) = self.subscribers.position(subscriber) else {
            return;
        };
        if self.subscribers[position].on_remb(bitrate_bps) {
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
        let previous = self.take_subscriber(subscriber);
        let entry = Subscriber::new(subscriber, tracks, previous, now);
        let position = self.subscribers.push(entry);
        self.subscribers[position].bind(&self.publication, now, &mut self.outputs);
        self.refresh_waiting();
        self.request_awaited_keyframes();
        self.run_timers(now);
    }

    /// Removes a viewer; unknown ids are ignored.
    pub fn remove_subscriber(&mut self, subscriber: PeerId) {
        self.take_subscriber(subscriber);
    }

    fn take_subscriber(&mut self, subscriber: PeerId) -> Option<Subscriber> {
        let taken = self.subscribers.take(subscriber)?;
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
        if self.publication.publisher != Some(publisher) {
            tracing::trace!(publisher, "rtp from a peer that is not the publisher");
            return;
        }
        let Some(index) = self.publication.track_of(packet.header.ssrc) else {
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

        let track = &self.publication.tracks[index];
        let up = &mut self.publication.up_tracks[index];
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
            // A late (resent) start of an older keyframe does not move the mark back.
            if up
                .last_keyframe
                .is_none_or(|(newest, _)| compacted > newest)
            {
                up.last_keyframe = Some((compacted, now));
            }
        }
        // Whether a viewer started or switched layers here (who waits for what changed).
        let mut moved = false;
        for subscriber in self.subscribers.iter_mut() {
            if let Some(started) = subscriber.forward(
                index,
                track,
                compacted,
                &packet,
                can_start,
                descriptor.as_ref(),
                now,
                &mut self.outputs,
            ) {
                moved |= started;
                self.stats.packets_out += 1;
            }
        }
        up.cache.insert(compacted, packet);
        up.newest = Some(up.newest.map_or(compacted, |newest| newest.max(compacted)));
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
        if self.publication.publisher != Some(publisher) {
            return;
        }
        let Some(index) = self.publication.track_of(ssrc) else {
            return;
        };
        self.publication.up_tracks[index].on_sender_report(ntp_time, rtp_time, now);
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
        let Some(position) = self.subscribers.position(subscriber) else {
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
        let up_tracks = &mut self.publication.up_tracks;
        let cache = &up_tracks[index].cache;
        if !down_track.has_rtx() {
            self.stats.nacks_unanswered += lost.len() as u64;
            let repair =
                kind == MediaKind::Video && lost.iter().any(|&seq| down_track.was_sent(seq, cache));
            if repair {
                let layer = down_track.target.unwrap_or(index);
                up_tracks[layer].keyframes.request();
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
        if let Some(&top) = self.publication.ranked_layers(now).last() {
            self.publication.up_tracks[top].keyframes.request();
        }
        self.run_timers(now);
    }

    /// Like [`Self::request_keyframe`], for the video track (simulcast layer) with `ssrc`: the
    /// one a recording keeps. Falls back to the largest layer for an unknown SSRC.
    pub fn request_keyframe_on(&mut self, ssrc: u32, now: Instant) {
        match self.publication.video_track_of(ssrc) {
            Some(index) => {
                self.publication.up_tracks[index].keyframes.request();
                self.run_timers(now);
            }
            None => self.request_keyframe(now),
        }
    }

    /// A viewer's PLI or FIR: asks the publisher for a keyframe (collapsed and throttled).
    pub fn on_keyframe_request(&mut self, subscriber: PeerId, now: Instant) {
        let Some(position) = self.subscribers.position(subscriber) else {
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
            self.publication.up_tracks[layer].keyframes.request();
        }
        self.run_timers(now);
    }

    /// Runs timers due at `now`: repeated keyframe requests and sender reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.run_timers(now);
    }

    /// When [`Self::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keyframe = self.waits.poll_timeout(&self.publication.up_tracks);
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

    /// Re-decides a subscriber's layer (see [`Subscriber::select_layer`]).
    fn select_layer(&mut self, position: usize, now: Instant) {
        let Some(probe_started) =
            self.subscribers[position].select_layer(&self.publication, now, &mut self.outputs)
        else {
            return;
        };
        if probe_started {
            self.next_probe = Some(self.next_probe.map_or(now, |due| due.min(now)));
        }
        self.refresh_waiting();
    }

    /// Sends the running probes' packets that are due (RTX copies of recent packets); a probe
    /// that ran its course lets its viewer move up.
    fn run_probes(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut passed = Vec::new();
        for (position, subscriber) in self.subscribers.iter_mut().enumerate() {
            let tick = subscriber.tick_probe(
                &self.publication,
                &mut self.rtx_buffer,
                &mut self.stats,
                &mut self.outputs,
                now,
            );
            if tick.passed {
                passed.push(position);
            }
            if let Some(due) = tick.due {
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
        for subscriber in self.subscribers.iter_mut() {
            subscriber.bind(&self.publication, now, &mut self.outputs);
        }
        self.refresh_waiting();
    }

    /// Recomputes which tracks some viewer waits for a keyframe of.
    fn refresh_waiting(&mut self) {
        self.waits
            .refresh(self.publication.tracks.len(), &self.subscribers);
    }

    /// Asks for a keyframe on every track some viewer waits for.
    fn request_awaited_keyframes(&mut self) {
        self.waits.request(&mut self.publication.up_tracks);
    }

    fn run_timers(&mut self, now: Instant) {
        if self.next_probe.is_some_and(|due| now >= due) {
            self.run_probes(now);
        }
        let publication = &mut self.publication;
        if let Some(publisher) = publication.publisher {
            for (index, up) in publication.up_tracks.iter_mut().enumerate() {
                let waiting = self.waits.is_waited_for(index);
                if let Some(request) = up.keyframes.poll(now, waiting) {
                    self.stats.keyframe_requests_sent += 1;
                    self.outputs.push_back(Output::KeyframeRequest {
                        publisher,
                        ssrc: publication.tracks[index].ssrc,
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
            for (index, (track, up)) in publication
                .tracks
                .iter()
                .zip(&publication.up_tracks)
                .enumerate()
            {
                let Some(clock) = &up.clock else {
                    continue;
                };
                for subscriber in self.subscribers.iter_mut() {
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

//! A stream: one publisher (at most one audio and one video track at a time) fanned out to
//! any number of subscribers. This is the sans-IO state machine the media engine drives:
//! it feeds decrypted RTP and RTCP in with the current time, calls `handle_timeout` when
//! `poll_timeout` says so, and drains `poll_output` after every call.
//!
//! The stream owns the per-track shared state ([`UpTrack`]) and the list of subscribers;
//! each subscriber owns its down tracks. It does not own sockets, encryption, RTCP parsing
//! or SDP: those are the engine's.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::Packet;
use rtc::shared::marshal::MarshalSize;

use crate::codec::{Codec, KeyframeRequestKind, MediaKind};
use crate::down_track::{DownTrack, DownTrackConfig};
use crate::keyframe::is_keyframe_start;
use crate::sender_report::SENDER_REPORT_INTERVAL;
use crate::stats::{RateWindow, StreamStats};
use crate::track::{PublishedTrack, UpTrack};

/// Identifies a publisher or a subscriber; chosen by the caller.
pub type PeerId = u64;

/// Something the engine must do, drained with [`Stream::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// One RTP packet to write to a subscriber's down track (SSRC/seq/ts/PT/extensions
    /// already rewritten).
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

    fn is_waiting_for_video(&self) -> bool {
        self.video.as_ref().is_some_and(DownTrack::is_waiting)
    }
}

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
    /// Video down tracks that can receive the source but have not had a keyframe yet.
    waiting_video: usize,
    next_sender_report: Option<Instant>,
    outputs: VecDeque<Output>,
    stats: StreamStats,
    rate: RateWindow,
    last_now: Option<Instant>,
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
        self.last_now = Some(now);
        let mut kept: Vec<PublishedTrack> = Vec::with_capacity(2);
        for track in tracks {
            if track.codec.kind() != track.kind {
                tracing::warn!(
                    publisher,
                    ?track,
                    "ignoring track whose codec is not of its kind"
                );
            } else if kept.iter().any(|other| other.kind == track.kind) {
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
        self.rebind_subscribers();
        if self.waiting_video > 0
            && let Some(video) = self.track_index(MediaKind::Video)
        {
            self.up_tracks[video].keyframes.request();
        }
        self.run_timers(now);
    }

    /// Removes the publisher if `publisher` is the current one; subscribers stay and
    /// resume when a new publisher is set.
    pub fn remove_publisher(&mut self, publisher: PeerId, now: Instant) {
        self.last_now = Some(now);
        if self.publisher != Some(publisher) {
            return;
        }
        self.publisher = None;
        self.tracks.clear();
        self.up_tracks.clear();
        self.next_sender_report = None;
        self.rebind_subscribers();
    }

    /// The current publisher, if any.
    pub fn publisher(&self) -> Option<PeerId> {
        self.publisher
    }

    /// The current publisher's tracks.
    pub fn tracks(&self) -> &[PublishedTrack] {
        &self.tracks
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
        self.last_now = Some(now);
        self.remove_subscriber(subscriber);
        let mut entry = Subscriber {
            id: subscriber,
            audio: None,
            video: None,
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
            let mut down_track = DownTrack::new(config);
            let source = self.tracks.iter().find(|t| t.kind == down_track.kind());
            if let Some(codec) = down_track.bind(source) {
                self.outputs
                    .push_back(Output::CodecMismatch { subscriber, codec });
            }
            *slot = Some(down_track);
        }
        if entry.is_waiting_for_video() {
            self.waiting_video += 1;
            if let Some(video) = self.track_index(MediaKind::Video) {
                self.up_tracks[video].keyframes.request();
            }
        }
        self.index.insert(subscriber, self.subscribers.len());
        self.subscribers.push(entry);
        self.run_timers(now);
    }

    /// Removes a viewer; unknown ids are ignored.
    pub fn remove_subscriber(&mut self, subscriber: PeerId) {
        let Some(position) = self.index.remove(&subscriber) else {
            return;
        };
        let removed = self.subscribers.swap_remove(position);
        if removed.is_waiting_for_video() {
            self.waiting_video = self.waiting_video.saturating_sub(1);
        }
        if let Some(moved) = self.subscribers.get(position) {
            self.index.insert(moved.id, position);
        }
    }

    /// How many viewers the stream has.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// One RTP packet from the publisher, decrypted. Packets from anyone but the current
    /// publisher, or on an SSRC it did not publish, are ignored.
    pub fn on_rtp(&mut self, publisher: PeerId, packet: Packet, now: Instant) {
        self.last_now = Some(now);
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
        let kind = track.kind;
        let can_start = is_keyframe_start(track.codec, &packet.payload);
        if can_start && kind == MediaKind::Video {
            up.keyframes.on_keyframe();
        }
        for subscriber in &mut self.subscribers {
            let Some(down_track) = subscriber.track_mut(kind) else {
                continue;
            };
            let was_waiting = kind == MediaKind::Video && down_track.is_waiting();
            if let Some(out) = down_track.forward(compacted, &packet, can_start, now) {
                if was_waiting {
                    self.waiting_video = self.waiting_video.saturating_sub(1);
                }
                self.stats.packets_out += 1;
                self.outputs.push_back(Output::Rtp {
                    subscriber: subscriber.id,
                    kind,
                    packet: out,
                });
            }
        }
        up.cache.insert(compacted, packet);
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
        self.last_now = Some(now);
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
    /// viewer's numbering. Answered from the track's NACK cache.
    pub fn on_nack(&mut self, subscriber: PeerId, media_ssrc: u32, lost: &[u16], now: Instant) {
        self.last_now = Some(now);
        let Some(&position) = self.index.get(&subscriber) else {
            return;
        };
        let entry = &mut self.subscribers[position];
        let Some(down_track) = entry.tracks_mut().find(|dt| dt.ssrc() == media_ssrc) else {
            return;
        };
        let kind = down_track.kind();
        let Some(index) = self.tracks.iter().position(|track| track.kind == kind) else {
            return;
        };
        let cache = &self.up_tracks[index].cache;
        for &seq in lost {
            if let Some(packet) = down_track.retransmit(seq, cache, now) {
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
        self.last_now = Some(now);
        if let Some(video) = self.track_index(MediaKind::Video) {
            self.up_tracks[video].keyframes.request();
        }
        self.run_timers(now);
    }

    /// A viewer's PLI or FIR: asks the publisher for a keyframe (collapsed and throttled).
    pub fn on_keyframe_request(&mut self, subscriber: PeerId, now: Instant) {
        self.last_now = Some(now);
        let Some(&position) = self.index.get(&subscriber) else {
            return;
        };
        // A viewer that cannot receive the publisher's video has nothing to repair.
        if !self.subscribers[position]
            .video
            .as_ref()
            .is_some_and(DownTrack::can_receive)
        {
            return;
        }
        if let Some(video) = self.track_index(MediaKind::Video) {
            self.up_tracks[video].keyframes.request();
        }
        self.run_timers(now);
    }

    /// Runs timers due at `now`: repeated keyframe requests and sender reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.run_timers(now);
    }

    /// When [`Self::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keyframe = self.track_index(MediaKind::Video).and_then(|video| {
            self.up_tracks[video]
                .keyframes
                .poll_timeout(self.waiting_video > 0)
        });
        [keyframe, self.next_sender_report]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next thing for the engine to do; drain after every call above.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The stream's counters and incoming bitrate (as of the last time passed in).
    pub fn stats(&self) -> StreamStats {
        let incoming_bitrate_bps = self.last_now.map_or(0, |now| self.rate.bitrate_bps(now));
        StreamStats {
            incoming_bitrate_bps,
            ..self.stats
        }
    }

    fn track_index(&self, kind: MediaKind) -> Option<usize> {
        self.tracks.iter().position(|track| track.kind == kind)
    }

    /// Points every down track at the current publisher's track of its kind (a new
    /// generation), reporting codec mismatches and recounting who waits for a keyframe.
    fn rebind_subscribers(&mut self) {
        let mut waiting = 0;
        for subscriber in &mut self.subscribers {
            let id = subscriber.id;
            for down_track in subscriber.tracks_mut() {
                let source = self.tracks.iter().find(|t| t.kind == down_track.kind());
                if let Some(codec) = down_track.bind(source) {
                    self.outputs.push_back(Output::CodecMismatch {
                        subscriber: id,
                        codec,
                    });
                }
            }
            if subscriber.is_waiting_for_video() {
                waiting += 1;
            }
        }
        self.waiting_video = waiting;
    }

    fn run_timers(&mut self, now: Instant) {
        if let (Some(publisher), Some(video)) = (self.publisher, self.track_index(MediaKind::Video))
            && let Some(request) = self.up_tracks[video]
                .keyframes
                .poll(now, self.waiting_video > 0)
        {
            self.stats.keyframe_requests_sent += 1;
            self.outputs.push_back(Output::KeyframeRequest {
                publisher,
                ssrc: self.tracks[video].ssrc,
                kind: request.kind,
                fir_seq: request.fir_seq,
            });
        }
        if let Some(due) = self.next_sender_report
            && now >= due
        {
            self.next_sender_report = Some(now + SENDER_REPORT_INTERVAL);
            for (track, up) in self.tracks.iter().zip(&self.up_tracks) {
                let Some(clock) = &up.clock else {
                    continue;
                };
                for subscriber in &mut self.subscribers {
                    let Some(down_track) = subscriber.track_mut(track.kind) else {
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

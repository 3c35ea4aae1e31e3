//! The streams: each stream's forwarding core (`directo_sfu::Stream`), who publishes and who
//! watches it, and its recording — started when it goes live if the recording policy says so,
//! continued across a publisher reconnect, finished on its own thread.
//!
//! A stream's entry exists while it has a publisher, a viewer or an unfinished recording; the
//! policy that decides recording is not kept here but asked (one owner: the server's settings).

use directo_sfu::{MediaKind, PublishedTrack, Stream};
use signaling_proto::{StreamInfo, TrackInfo};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::handle::RecordingPolicy;
use crate::metrics::EngineMetrics;
use crate::peer::PeerId;
use crate::recording::StreamRecording;
use crate::restream::{self, RestreamPort, RestreamTap};
use rtc::shared::marshal::MarshalSize;

/// How long a recording waits for its publisher to come back before the file is finished.
const RECORDING_IDLE_GRACE: Duration = Duration::from_secs(10);

/// One stream's forwarding state and its peers.
pub(crate) struct StreamEntry {
    pub(crate) sfu: Stream,
    pub(crate) publisher: Option<PeerId>,
    /// The publisher is a relay from another node (restreams run at the origin only).
    pub(crate) relayed: bool,
    pub(crate) viewers: Vec<PeerId>,
    /// Of `viewers`, the other nodes pulling the stream to relay it (not its audience).
    pub(crate) relay_pulls: usize,
    pub(crate) live_announced: bool,
    pub(crate) recording: Option<StreamRecording>,
    /// The live Matroska tap feeding the server's restream encoder (`restream.rs`).
    pub(crate) restream: Option<RestreamTap>,
}

impl StreamEntry {
    fn new() -> Self {
        StreamEntry {
            sfu: Stream::new(),
            publisher: None,
            relayed: false,
            viewers: Vec::new(),
            relay_pulls: 0,
            live_announced: false,
            recording: None,
            restream: None,
        }
    }

    fn is_idle(&self) -> bool {
        self.publisher.is_none()
            && self.viewers.is_empty()
            && self.recording.is_none()
            && self.restream.is_none()
    }

    /// One RTP packet of the stream's source (`id`: its publisher or relay): counted, offered
    /// to the recording and the restream tap, and fed to the forwarding core.
    pub(crate) fn source_rtp(
        &mut self,
        metrics: &EngineMetrics,
        id: PeerId,
        packet: rtc::rtp::packet::Packet,
        now: Instant,
    ) {
        metrics.packets_in.increment(1);
        metrics
            .bytes_in
            .increment((packet.header.marshal_size() + packet.payload.len()) as u64);
        if let Some(recording) = &self.recording {
            recording.push(&packet, now);
        }
        if let Some(tap) = &self.restream {
            tap.push(&packet, now);
        }
        self.sfu.on_rtp(id, packet, now);
    }

    /// A sender report of the stream's source: the forwarding core's clock mapping, the
    /// recording's and the restream tap's.
    pub(crate) fn source_sender_report(
        &mut self,
        id: PeerId,
        ssrc: u32,
        ntp_time: u64,
        rtp_time: u32,
        now: Instant,
    ) {
        self.sfu.on_sender_report(id, ssrc, ntp_time, rtp_time, now);
        if let Some(recording) = &self.recording {
            recording.sender_report(ssrc, ntp_time, rtp_time, now);
        }
        if let Some(tap) = &self.restream {
            tap.sender_report(ssrc, ntp_time, rtp_time, now);
        }
    }

    /// What the API and pages show of this stream.
    pub(crate) fn info(&self, name: &str, now: Instant) -> StreamInfo {
        let stats = self.sfu.stats(now);
        let mut tracks: Vec<TrackInfo> = Vec::new();
        for track in self.sfu.tracks() {
            let kind = kind_name(track.kind);
            // Simulcast layers are one track with layers.
            if tracks.iter().any(|t| t.kind == kind) {
                continue;
            }
            let layers = if track.rid.is_some() {
                self.sfu
                    .video_layers(now)
                    .into_iter()
                    .filter_map(|(rid, _, _)| rid)
                    .collect()
            } else {
                Vec::new()
            };
            tracks.push(TrackInfo {
                kind: kind.to_owned(),
                codec: track.codec.mime_type().to_owned(),
                layers,
            });
        }
        StreamInfo {
            name: name.to_owned(),
            live: self.publisher.is_some() && !tracks.is_empty(),
            tracks,
            viewers: self.viewers.len().saturating_sub(self.relay_pulls),
            bitrate_bps: stats.incoming_bitrate_bps,
            recording: self.recording.is_some(),
        }
    }
}

/// The `audio`/`video` word for a kind.
pub(crate) fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

/// What recording needs to know besides the streams: where files go and who decides.
pub(crate) struct RecordingSetup {
    /// Where live streams are recorded (`None`: never).
    pub(crate) dir: Option<PathBuf>,
    /// Whether a stream is recorded.
    pub(crate) policy: Arc<dyn RecordingPolicy>,
    /// Whether and where a live stream is restreamed (`None`: never).
    pub(crate) restream: Option<Arc<dyn RestreamPort>>,
}

/// Every stream, and recordings being finished.
pub(crate) struct Streams {
    entries: HashMap<String, StreamEntry>,
    recording: RecordingSetup,
    /// Recordings being finished on their own threads.
    finishing: Vec<JoinHandle<()>>,
}

impl Streams {
    pub(crate) fn new(recording: RecordingSetup) -> Self {
        Streams {
            entries: HashMap::new(),
            recording,
            finishing: Vec::new(),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&StreamEntry> {
        self.entries.get(name)
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut StreamEntry> {
        self.entries.get_mut(name)
    }

    /// The entry of `name`, created if it has none.
    pub(crate) fn entry(&mut self, name: &str) -> &mut StreamEntry {
        if !self.entries.contains_key(name) {
            self.entries.insert(name.to_owned(), StreamEntry::new());
        }
        // Just inserted if it was missing.
        self.entries
            .get_mut(name)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &StreamEntry)> {
        self.entries.iter()
    }

    /// Drop `name`'s entry if nothing holds it any more.
    pub(crate) fn remove_if_idle(&mut self, name: &str) {
        if self.entries.get(name).is_some_and(StreamEntry::is_idle) {
            self.entries.remove(name);
        }
    }

    /// The earliest timeout any stream's forwarding core wants.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| e.sfu.poll_timeout())
            .min()
    }

    /// The streams whose forwarding core has a timeout due at `now`.
    pub(crate) fn due(&self, now: Instant) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.sfu.poll_timeout().is_some_and(|t| t <= now))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A publisher with `tracks` went live on `name`: continue its recording, or start one
    /// if the policy records it.
    pub(crate) fn record_live(&mut self, name: &str, tracks: &[PublishedTrack], now: Instant) {
        let records = self.recording.policy.records(name);
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let recorded = recorded_tracks(tracks, entry.sfu.top_video_ssrc(now));
        if let Some(tap) = &mut entry.restream {
            tap.publisher_changed(&recorded, now);
        }
        match (&mut entry.recording, &self.recording.dir) {
            (Some(recording), _) => recording.publisher_changed(&recorded, now),
            (None, Some(dir)) if records => {
                match StreamRecording::start(dir, name, &recorded, now) {
                    Ok(recording) => entry.recording = Some(recording),
                    Err(e) => tracing::error!(stream = %name, error = %e, "cannot start recording"),
                }
            }
            _ => {}
        }
    }

    /// The policy for `name` changed: start recording it now (it is live) or stop.
    pub(crate) fn apply_policy(&mut self, name: &str, tracks: &[PublishedTrack], now: Instant) {
        let records = self.recording.policy.records(name);
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        if !records {
            if let Some(recording) = entry.recording.take() {
                self.finishing.push(recording.finish());
            }
            return;
        }
        let (Some(dir), None, Some(_)) = (&self.recording.dir, &entry.recording, entry.publisher)
        else {
            return;
        };
        if tracks.is_empty() {
            return;
        }
        let tracks = recorded_tracks(tracks, entry.sfu.top_video_ssrc(now));
        match StreamRecording::start(dir, name, &tracks, now) {
            Ok(recording) => {
                match recording.video_ssrc() {
                    Some(ssrc) => entry.sfu.request_keyframe_on(ssrc, now),
                    None => entry.sfu.request_keyframe(now),
                }
                entry.recording = Some(recording);
            }
            Err(e) => tracing::error!(stream = %name, error = %e, "cannot start recording"),
        }
    }

    /// Finish `name`'s recording now (its publisher ended the stream on purpose).
    pub(crate) fn finish_recording(&mut self, name: &str) {
        if let Some(entry) = self.entries.get_mut(name) {
            // The restream ends with the stream.
            entry.restream = None;
            if let Some(recording) = entry.recording.take() {
                self.finishing.push(recording.finish());
            }
        }
        self.remove_if_idle(name);
    }

    /// Periodic recording upkeep: keyframe requests the recorders asked for, recordings whose
    /// publisher did not come back in time finished, idle entries dropped. Returns the
    /// packets the recorders dropped since the last call.
    pub(crate) fn sweep(&mut self, now: Instant) -> u64 {
        let mut dropped = 0;
        for (name, entry) in self.entries.iter_mut() {
            if let Some(port) = &self.recording.restream {
                let live = (entry.publisher.is_some() && !entry.relayed)
                    .then(|| recorded_tracks(entry.sfu.tracks(), entry.sfu.top_video_ssrc(now)));
                match restream::upkeep(
                    &mut entry.restream,
                    port.as_ref(),
                    name,
                    live.as_deref(),
                    now,
                ) {
                    Some(Some(ssrc)) => entry.sfu.request_keyframe_on(ssrc, now),
                    Some(None) => entry.sfu.request_keyframe(now),
                    None => {}
                }
            }
            let Some(recording) = entry.recording.as_mut() else {
                continue;
            };
            dropped += recording.new_drops();
            if recording.take_keyframe_request() {
                match recording.video_ssrc() {
                    Some(ssrc) => entry.sfu.request_keyframe_on(ssrc, now),
                    None => entry.sfu.request_keyframe(now),
                }
            }
            if recording
                .idle_since
                .is_some_and(|t| now.duration_since(t) > RECORDING_IDLE_GRACE)
                && let Some(recording) = entry.recording.take()
            {
                self.finishing.push(recording.finish());
            }
        }
        self.entries.retain(|_, e| !e.is_idle());
        self.finishing.retain(|h| !h.is_finished());
        dropped
    }

    /// Finish every recording and wait for the files to be complete (shutdown).
    pub(crate) fn finish_all(&mut self) {
        for entry in self.entries.values_mut() {
            entry.restream = None;
            if let Some(recording) = entry.recording.take() {
                self.finishing.push(recording.finish());
            }
        }
        for handle in self.finishing.drain(..) {
            let _ = handle.join();
        }
    }

    /// Every stream as the API shows it, by name.
    pub(crate) fn infos(&self, now: Instant) -> Vec<StreamInfo> {
        let mut list: Vec<StreamInfo> = self
            .entries
            .iter()
            .map(|(name, entry)| entry.info(name, now))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

/// What a recording keeps of the publisher's tracks: audio and the largest video layer.
fn recorded_tracks(published: &[PublishedTrack], top_video: Option<u32>) -> Vec<PublishedTrack> {
    published
        .iter()
        .filter(|t| t.kind == MediaKind::Audio || top_video.is_none_or(|ssrc| t.ssrc == ssrc))
        .cloned()
        .collect()
}

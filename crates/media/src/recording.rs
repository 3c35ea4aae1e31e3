//! A live stream's recording, as the engine drives it: the same packets viewers get are
//! offered to a recorder thread through a bounded channel (never waited on), and the
//! recorder's keyframe requests come back through a flag the engine reads.

use directo_recorder::{
    DEFAULT_CHANNEL_CAPACITY, Recorder, RecorderEvent, RecorderHandle, RecordingTracks,
};
use directo_sfu::{MediaKind, PublishedTrack};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

/// One stream's running recording.
pub(crate) struct StreamRecording {
    handle: RecorderHandle,
    keyframe_needed: Arc<AtomicBool>,
    /// Which SSRC is which kind, for the current publisher.
    ssrcs: Vec<(u32, MediaKind)>,
    /// When the publisher left (the recording continues if it comes back soon).
    pub(crate) idle_since: Option<Instant>,
    /// Drops already reported.
    reported_drops: u64,
}

pub(crate) fn tracks_of(published: &[PublishedTrack]) -> RecordingTracks {
    RecordingTracks {
        audio: published
            .iter()
            .find(|t| t.kind == MediaKind::Audio)
            .map(|t| t.codec),
        video: published
            .iter()
            .find(|t| t.kind == MediaKind::Video)
            .map(|t| t.codec),
    }
}

impl StreamRecording {
    /// Start recording `stream` under `dir` with the publisher's tracks.
    pub(crate) fn start(
        dir: &Path,
        stream: &str,
        published: &[PublishedTrack],
        now: Instant,
    ) -> Result<Self, directo_recorder::RecorderError> {
        let recorder = Recorder::start(dir, stream, tracks_of(published), now, SystemTime::now())?;
        let keyframe_needed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&keyframe_needed);
        let name = stream.to_owned();
        let handle =
            RecorderHandle::spawn(
                recorder,
                DEFAULT_CHANNEL_CAPACITY,
                move |event| match event {
                    RecorderEvent::KeyframeNeeded => flag.store(true, Ordering::Relaxed),
                    RecorderEvent::Failed(e) => {
                        tracing::error!(stream = %name, error = %e, "recording failed")
                    }
                },
            )?;
        tracing::info!(%stream, file = %handle.path().display(), "recording");
        Ok(StreamRecording {
            handle,
            keyframe_needed,
            ssrcs: published.iter().map(|t| (t.ssrc, t.kind)).collect(),
            idle_since: None,
            reported_drops: 0,
        })
    }

    /// A (new or returning) publisher with these tracks: the file continues.
    pub(crate) fn publisher_changed(&mut self, published: &[PublishedTrack], now: Instant) {
        self.ssrcs = published.iter().map(|t| (t.ssrc, t.kind)).collect();
        self.idle_since = None;
        self.handle.publisher_changed(tracks_of(published), now);
    }

    /// The SSRC of the video this recording keeps (one simulcast layer), if it has video.
    pub(crate) fn video_ssrc(&self) -> Option<u32> {
        self.ssrcs
            .iter()
            .find(|(_, kind)| *kind == MediaKind::Video)
            .map(|(ssrc, _)| *ssrc)
    }

    fn kind(&self, ssrc: u32) -> Option<MediaKind> {
        self.ssrcs.iter().find(|(s, _)| *s == ssrc).map(|(_, k)| *k)
    }

    /// Offer one of the publisher's packets (never blocks; a full channel is counted).
    pub(crate) fn push(&self, packet: &rtc::rtp::Packet, now: Instant) {
        if let Some(kind) = self.kind(packet.header.ssrc) {
            self.handle.push(kind, packet.clone(), now);
        }
    }

    /// Offer the publisher's sender report (the NTP↔RTP mapping that syncs the tracks).
    pub(crate) fn sender_report(&self, ssrc: u32, ntp: u64, rtp: u32, now: Instant) {
        if let Some(kind) = self.kind(ssrc) {
            self.handle.sender_report(kind, ssrc, ntp, rtp, now);
        }
    }

    /// Packets the recorder could not take since the last call.
    pub(crate) fn new_drops(&mut self) -> u64 {
        let total = self.handle.dropped();
        let new = total.saturating_sub(self.reported_drops);
        self.reported_drops = total;
        new
    }

    /// Whether the recorder asked for a keyframe since the last call.
    pub(crate) fn take_keyframe_request(&self) -> bool {
        self.keyframe_needed.swap(false, Ordering::Relaxed)
    }

    /// Finish the file (Cues, Duration) on a thread of its own, so the media loop never
    /// waits for the disk; the join handle lets shutdown wait for it.
    pub(crate) fn finish(self) -> JoinHandle<()> {
        let path = self.handle.path().to_path_buf();
        let dropped = self.handle.dropped();
        if dropped > 0 {
            tracing::warn!(file = %path.display(), dropped, "the recorder fell behind and dropped packets");
        }
        std::thread::spawn(move || match self.handle.finish() {
            Ok(files) => {
                for file in files {
                    tracing::info!(file = %file.path.display(), seconds = file.duration.as_secs_f64(), "recording finished");
                }
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "finishing a recording failed")
            }
        })
    }
}

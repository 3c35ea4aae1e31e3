//! A live stream's restream tap, as the engine drives it: the packets the recording gets are
//! offered (never waited on) to a second, live recorder (`Recorder::start_live`) on a thread
//! of its own, which writes the stream as live Matroska — same reassembly, same audio/video
//! sync from the publisher's sender reports — into a writer the server hands over through a
//! [`RestreamPort`] (the stdin of its encoder). The engine keeps no destinations: it asks
//! the port, every sweep, whether a stream is wanted, and starts or drops its tap.

pub use directo_recorder::RecordingTracks;
use directo_recorder::{DEFAULT_CHANNEL_CAPACITY, Recorder, RecorderEvent, RecorderHandle};
use directo_sfu::{Codec, MediaKind, PublishedTrack};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::recording::tracks_of;

/// How often a publisher whose H264 is passed through is asked for a keyframe: RTMP
/// services want one at least every 2–4 s, and a WebRTC sender makes one only when asked.
pub const PASSTHROUGH_KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);

/// How long a tap waits for its publisher to come back before it ends (the recording's
/// grace).
const IDLE_GRACE: Duration = Duration::from_secs(10);

/// Whether and where a live stream is restreamed. One owner answers (the server's restream
/// service); the engine asks, it keeps no copy.
pub trait RestreamPort: Send + Sync + 'static {
    /// Whether `stream` has somewhere to go now. Asked every sweep (twice a second) for
    /// every live stream: it must be cheap and never wait.
    fn wanted(&self, stream: &str) -> bool;
    /// The live stream of `stream`, with `tracks`, starts: where its Matroska bytes go
    /// (`None`: not now). Written from the tap's own thread; writes may block there.
    fn open(&self, stream: &str, tracks: RecordingTracks) -> Option<Box<dyn Write + Send>>;
}

/// One stream's running restream tap.
pub(crate) struct RestreamTap {
    handle: RecorderHandle,
    keyframe_needed: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    /// Which SSRC is which kind, for the current publisher.
    ssrcs: Vec<(u32, MediaKind)>,
    /// H264 is passed through to the destinations: keyframes are asked for on a timer.
    passthrough: bool,
    last_keyframe_request: Option<Instant>,
    /// When the publisher left (the tap continues if it comes back soon).
    pub(crate) idle_since: Option<Instant>,
}

impl RestreamTap {
    /// Start the tap of `stream` if `port` wants it, with the publisher's (recorded) tracks.
    pub(crate) fn start(
        port: &dyn RestreamPort,
        stream: &str,
        published: &[PublishedTrack],
        now: Instant,
    ) -> Option<Self> {
        let tracks = tracks_of(published);
        if !port.wanted(stream) || (tracks.audio.is_none() && tracks.video.is_none()) {
            return None;
        }
        let out = port.open(stream, tracks)?;
        let recorder = match Recorder::start_live(out, stream, tracks, now, SystemTime::now()) {
            Ok(recorder) => recorder,
            Err(e) => {
                tracing::error!(%stream, error = %e, "cannot start the restream tap");
                return None;
            }
        };
        let keyframe_needed = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let (flag, fail) = (Arc::clone(&keyframe_needed), Arc::clone(&failed));
        let name = stream.to_owned();
        let handle =
            RecorderHandle::spawn(
                recorder,
                DEFAULT_CHANNEL_CAPACITY,
                move |event| match event {
                    RecorderEvent::KeyframeNeeded => flag.store(true, Ordering::Relaxed),
                    RecorderEvent::Failed(e) => {
                        tracing::info!(stream = %name, error = %e, "restream tap ended");
                        fail.store(true, Ordering::Relaxed);
                    }
                },
            )
            .map_err(|e| tracing::error!(%stream, error = %e, "cannot start the restream tap"))
            .ok()?;
        tracing::info!(%stream, "restream tap started");
        Some(RestreamTap {
            handle,
            keyframe_needed,
            failed,
            ssrcs: published.iter().map(|t| (t.ssrc, t.kind)).collect(),
            passthrough: tracks.video == Some(Codec::H264),
            last_keyframe_request: None,
            idle_since: None,
        })
    }

    /// A (new or returning) publisher with these tracks: the live stream continues.
    pub(crate) fn publisher_changed(&mut self, published: &[PublishedTrack], now: Instant) {
        self.ssrcs = published.iter().map(|t| (t.ssrc, t.kind)).collect();
        self.idle_since = None;
        self.handle.publisher_changed(tracks_of(published), now);
    }

    fn kind(&self, ssrc: u32) -> Option<MediaKind> {
        self.ssrcs.iter().find(|(s, _)| *s == ssrc).map(|(_, k)| *k)
    }

    /// The SSRC of the video this tap keeps (one simulcast layer), if it has video.
    pub(crate) fn video_ssrc(&self) -> Option<u32> {
        self.ssrcs
            .iter()
            .find(|(_, kind)| *kind == MediaKind::Video)
            .map(|(ssrc, _)| *ssrc)
    }

    /// Offer one of the publisher's packets (never blocks; a full channel is counted).
    pub(crate) fn push(&self, packet: &rtc::rtp::Packet, now: Instant) {
        if let Some(kind) = self.kind(packet.header.ssrc) {
            self.handle.push(kind, packet.clone(), now);
        }
    }

    /// Offer the publisher's sender report.
    pub(crate) fn sender_report(&self, ssrc: u32, ntp: u64, rtp: u32, now: Instant) {
        if let Some(kind) = self.kind(ssrc) {
            self.handle.sender_report(kind, ssrc, ntp, rtp, now);
        }
    }

    /// Whether the tap wants a keyframe now: its recorder asked, or H264 is passed through
    /// and the last request is [`PASSTHROUGH_KEYFRAME_INTERVAL`] old.
    pub(crate) fn wants_keyframe(&mut self, now: Instant) -> bool {
        let asked = self.keyframe_needed.swap(false, Ordering::Relaxed);
        let due = self.passthrough
            && self.idle_since.is_none()
            && self
                .last_keyframe_request
                .is_none_or(|t| now.duration_since(t) >= PASSTHROUGH_KEYFRAME_INTERVAL);
        if asked || due {
            self.last_keyframe_request = Some(now);
        }
        asked || due
    }

    /// Whether the tap is over: its writer failed (the server closed it), or the publisher
    /// did not come back within the grace.
    pub(crate) fn is_over(&self, now: Instant) -> bool {
        self.failed.load(Ordering::Relaxed)
            || self
                .idle_since
                .is_some_and(|t| now.duration_since(t) > IDLE_GRACE)
    }

    /// Packets the tap could not take so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.handle.dropped()
    }
}

/// Restream upkeep of one stream, each sweep: start its tap when it is live and wanted,
/// drop it when it is over or no longer wanted. Returns whether a keyframe should be asked
/// for (the ssrc of the tap's video, if it has one).
pub(crate) fn upkeep(
    tap: &mut Option<RestreamTap>,
    port: &dyn RestreamPort,
    stream: &str,
    live_tracks: Option<&[PublishedTrack]>,
    now: Instant,
) -> Option<Option<u32>> {
    if let Some(current) = tap {
        if current.is_over(now) || !port.wanted(stream) {
            if current.dropped() > 0 {
                tracing::warn!(%stream, dropped = current.dropped(), "the restream tap fell behind and dropped packets");
            }
            *tap = None;
            return None;
        }
        return current.wants_keyframe(now).then(|| current.video_ssrc());
    }
    let tracks = live_tracks.filter(|t| !t.is_empty())?;
    let mut started = RestreamTap::start(port, stream, tracks, now)?;
    started.last_keyframe_request = Some(now);
    let video = started.video_ssrc();
    *tap = Some(started);
    // A new tap starts at a keyframe.
    Some(video)
}

//! The sans-IO recorder core: packets, sender reports and publisher changes go in with the
//! time they happened; keyframe requests come out through [`Recorder::poll_output`]. No
//! thread, no clock, no channel of its own (see [`crate::RecorderHandle`] for those); the
//! only I/O is appending to the recording file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use directo_sfu::{Codec, MediaKind};
use rtc::rtp::Packet;

use crate::clock::{Nanos, Placement, nanos_since, ntp_to_nanos};
use crate::error::{RecorderError, Result};
use crate::info::RecordingInfo;
use crate::muxer::{MuxFrame, Muxer};
use crate::sync::AvSync;
use crate::track::{TrackFrame, TrackPipeline};

/// How often a keyframe is asked for again while video waits for one.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Which codec each of the publisher's tracks carries; `None` for a track it does not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordingTracks {
    /// The audio track's codec (Opus).
    pub audio: Option<Codec>,
    /// The video track's codec (VP8, VP9 or H264).
    pub video: Option<Codec>,
}

impl RecordingTracks {
    fn validate(self) -> Result<Self> {
        if self.audio.is_none() && self.video.is_none() {
            return Err(RecorderError::InvalidTracks(
                "neither audio nor video".into(),
            ));
        }
        if let Some(codec) = self.audio.filter(|&c| c != Codec::Opus) {
            return Err(RecorderError::InvalidTracks(format!(
                "{codec:?} as the audio track"
            )));
        }
        if let Some(codec) = self.video.filter(|c| c.kind() != MediaKind::Video) {
            return Err(RecorderError::InvalidTracks(format!(
                "{codec:?} as the video track"
            )));
        }
        Ok(self)
    }

    /// The file extension these tracks are recorded with: `mkv` for H264 (which WebM does
    /// not allow), `webm` otherwise.
    pub fn extension(self) -> &'static str {
        if self.video == Some(Codec::H264) {
            "mkv"
        } else {
            "webm"
        }
    }
}

/// Something the recorder asks of the media engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecorderOutput {
    /// Ask the publisher for a keyframe (PLI/FIR): video is dropped until one arrives.
    KeyframeNeeded,
}

/// Counters a recorder keeps, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecorderStats {
    /// Video frames not written because loss made them undecodable.
    pub video_frames_dropped: u64,
    /// Keyframe requests emitted.
    pub keyframe_requests: u64,
    /// Files finished so far (more than one if the publisher changed codecs).
    pub files_finished: u64,
}

/// Records one stream to `{dir}/{stream}/{UTC start}.webm` (or `.mkv` for H264).
pub struct Recorder {
    dir: PathBuf,
    stream: String,
    origin: Instant,
    wall_origin: SystemTime,
    muxer: Muxer,
    audio: Option<TrackPipeline>,
    video: Option<TrackPipeline>,
    /// Which publisher of the recording is sending (counted from 0): a new SSRC or
    /// [`Recorder::publisher_changed`] starts the next one.
    run: u64,
    /// The current publisher's audio/video sync.
    sync: AvSync,
    outputs: VecDeque<RecorderOutput>,
    last_keyframe_request: Option<Nanos>,
    stats: RecorderStats,
    finished: Vec<RecordingInfo>,
}

impl Recorder {
    /// Starts a recording of `stream` under `dir`, creating `{dir}/{stream}/` if needed.
    /// `now` and `wall` are the same moment on the monotonic and the wall clock; the wall
    /// clock names the file and dates it.
    pub fn start(
        dir: impl Into<PathBuf>,
        stream: &str,
        tracks: RecordingTracks,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Self> {
        let dir = dir.into();
        let tracks = tracks.validate()?;
        if stream.is_empty() || stream.contains(['/', '\\']) || stream == "." || stream == ".." {
            return Err(RecorderError::InvalidTracks(format!(
                "stream name {stream:?} cannot name a directory"
            )));
        }
        let muxer = open_muxer(&dir, stream, tracks, wall)?;
        let mut recorder = Recorder {
            dir,
            stream: stream.to_string(),
            origin: now,
            wall_origin: wall,
            muxer,
            audio: tracks.audio.map(|codec| TrackPipeline::new(codec, 0)),
            video: tracks.video.map(|codec| TrackPipeline::new(codec, 0)),
            run: 0,
            sync: AvSync::default(),
            outputs: VecDeque::new(),
            last_keyframe_request: None,
            stats: RecorderStats::default(),
            finished: Vec::new(),
        };
        recorder.request_keyframe_if_needed(0);
        Ok(recorder)
    }

    /// A recorder that writes `stream` as a live Matroska stream to `out` (a pipe to an
    /// encoder, for restreaming) rather than to a file: the same reassembly and the same
    /// audio/video sync as a recording, but nothing written is rewritten — a track placed
    /// for good moves from its next frame on — and clusters are sent block by block. A
    /// publisher who comes back with other codecs ends it ([`RecorderError::InvalidTracks`]).
    pub fn start_live(
        out: Box<dyn std::io::Write + Send>,
        stream: &str,
        tracks: RecordingTracks,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Self> {
        let tracks = tracks.validate()?;
        let muxer = Muxer::live(
            PathBuf::from(format!("live:{stream}")),
            out,
            stream,
            tracks,
            wall,
        );
        let mut recorder = Recorder {
            dir: PathBuf::new(),
            stream: stream.to_string(),
            origin: now,
            wall_origin: wall,
            muxer,
            audio: tracks.audio.map(|codec| TrackPipeline::new(codec, 0)),
            video: tracks.video.map(|codec| TrackPipeline::new(codec, 0)),
            run: 0,
            sync: AvSync::default(),
            outputs: VecDeque::new(),
            last_keyframe_request: None,
            stats: RecorderStats::default(),
            finished: Vec::new(),
        };
        recorder.request_keyframe_if_needed(0);
        Ok(recorder)
    }

    /// The file currently being written.
    pub fn path(&self) -> &Path {
        self.muxer.path()
    }

    /// Counters so far.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            video_frames_dropped: self.video.as_ref().map_or(0, |v| v.frames_dropped()),
            ..self.stats
        }
    }

    /// The next request for the media engine, if any.
    pub fn poll_output(&mut self) -> Option<RecorderOutput> {
        self.outputs.pop_front()
    }

    fn track_mut(&mut self, kind: MediaKind) -> Option<&mut TrackPipeline> {
        match kind {
            MediaKind::Audio => self.audio.as_mut(),
            MediaKind::Video => self.video.as_mut(),
        }
    }

    /// Takes one decrypted RTP packet of the publisher's `kind` track, received at `arrival`.
    /// A packet of a new SSRC is a new publisher on that track: it continues the same file.
    pub fn push(&mut self, kind: MediaKind, packet: Packet, arrival: Instant) -> Result<()> {
        let at = nanos_since(self.origin, arrival);
        let ssrc = packet.header.ssrc;
        let Some(track) = self.track_mut(kind) else {
            return Ok(());
        };
        if track.ssrc().is_some_and(|current| current != ssrc) {
            self.new_publisher_on(kind, arrival)?;
        }
        if let Some(track) = self.track_mut(kind) {
            track.push(packet, at, arrival);
        }
        self.drain(kind, arrival)?;
        // Sender reports are only taken in, so a decision they made ready happens here.
        self.decide_sync(self.run, at, false)?;
        self.request_keyframe_if_needed(at);
        Ok(())
    }

    /// Takes the publisher's RTCP sender report for its `kind` track: NTP time `ntp` (64-bit
    /// fixed point) is RTP time `rtp`. Reports of another SSRC than the track's are ignored.
    pub fn sender_report(
        &mut self,
        kind: MediaKind,
        ssrc: u32,
        ntp: u64,
        rtp: u32,
        arrival: Instant,
    ) {
        let at = nanos_since(self.origin, arrival);
        let ntp_nanos = ntp_to_nanos(ntp);
        let Some(track) = self.track_mut(kind) else {
            return;
        };
        if track.ssrc().is_some_and(|current| current != ssrc) {
            return;
        }
        track.clock.on_sender_report(rtp, ntp_nanos, at);
    }

    /// The publisher went away and `tracks` is the new one's. With the same codecs the
    /// recording goes on in the same file after a gap; otherwise this file is finished and
    /// a new one started.
    pub fn publisher_changed(&mut self, tracks: RecordingTracks, now: Instant) -> Result<()> {
        let tracks = tracks.validate()?;
        self.flush_track(MediaKind::Audio, now)?;
        self.flush_track(MediaKind::Video, now)?;
        self.decide_every_run(now)?;
        self.run += 1;
        self.sync = AvSync::default();
        for track in [&mut self.audio, &mut self.video].into_iter().flatten() {
            track.reset(self.run);
        }
        if tracks != self.muxer.tracks() && self.muxer.is_live() {
            return Err(RecorderError::InvalidTracks(
                "the publisher's codecs changed during a live stream".into(),
            ));
        }
        if tracks != self.muxer.tracks() {
            let wall = self.wall_origin + now.saturating_duration_since(self.origin);
            let next = open_muxer(&self.dir, &self.stream, tracks, wall)?;
            let previous = std::mem::replace(&mut self.muxer, next);
            self.finish_muxer(previous)?;
            self.audio = tracks
                .audio
                .map(|codec| TrackPipeline::new(codec, self.run));
            self.video = tracks
                .video
                .map(|codec| TrackPipeline::new(codec, self.run));
        }
        self.request_keyframe_if_needed(nanos_since(self.origin, now));
        Ok(())
    }

    /// Packets were lost before reaching the recorder (its channel was full): audio goes on
    /// with a gap, video waits for a keyframe, which is requested.
    pub fn packets_lost(&mut self, now: Instant) {
        if let Some(video) = &mut self.video {
            video.mark_loss();
        }
        self.last_keyframe_request = None;
        self.request_keyframe_if_needed(nanos_since(self.origin, now));
    }

    /// Writes what is still held and completes the file (Cues, Duration). Returns every file
    /// this recorder finished, the last one being the one it was writing.
    pub fn finish(mut self, now: Instant) -> Result<Vec<RecordingInfo>> {
        self.flush_track(MediaKind::Audio, now)?;
        self.flush_track(MediaKind::Video, now)?;
        self.decide_every_run(now)?;
        let Recorder {
            muxer,
            mut finished,
            ..
        } = self;
        let path = muxer.path().to_path_buf();
        if muxer.finish()?.is_some() {
            finished.push(RecordingInfo::read(&path)?);
        }
        Ok(finished)
    }

    fn finish_muxer(&mut self, muxer: Muxer) -> Result<()> {
        let path = muxer.path().to_path_buf();
        if muxer.finish()?.is_some() {
            self.finished.push(RecordingInfo::read(&path)?);
            self.stats.files_finished += 1;
        }
        Ok(())
    }

    /// A packet of a new SSRC arrived on `kind`'s track: a new publisher. The track's last
    /// complete frame is written; the first track to see the new publisher also places the
    /// old publisher's tracks for good (their reports end here) and starts a new sync, since
    /// the old publisher's NTP clock says nothing about the new one's.
    fn new_publisher_on(&mut self, kind: MediaKind, now: Instant) -> Result<()> {
        let Some(old_run) = self.track_mut(kind).map(|t| t.run()) else {
            return Ok(());
        };
        self.flush_track(kind, now)?;
        self.decide_sync(old_run, nanos_since(self.origin, now), true)?;
        if old_run == self.run {
            self.run += 1;
            self.sync = AvSync::default();
        }
        let run = self.run;
        if let Some(track) = self.track_mut(kind) {
            track.reset(run);
        }
        Ok(())
    }

    /// Places for good the provisionally placed tracks of publisher `run` once their sender
    /// reports are ready (or now, if `force`), moving what was written of them.
    fn decide_sync(&mut self, run: u64, at: Nanos, force: bool) -> Result<()> {
        let waiting = |track: &Option<TrackPipeline>| {
            track.as_ref().is_some_and(|t| {
                t.run() == run && matches!(t.clock.placement(), Placement::Provisional(_))
            })
        };
        if !waiting(&self.audio) && !waiting(&self.video) {
            return Ok(());
        }
        let mut tracks: Vec<_> = [
            (MediaKind::Audio, self.audio.as_mut()),
            (MediaKind::Video, self.video.as_mut()),
        ]
        .into_iter()
        .filter_map(|(kind, track)| {
            let track = track.filter(|t| t.run() == run)?;
            Some((kind, &mut track.clock))
        })
        .collect();
        // An earlier publisher's offset went when the next one began: a track of it that
        // is still provisional stays where arrivals put it.
        let mut earlier = AvSync::default();
        let sync = if run == self.run {
            &mut self.sync
        } else {
            &mut earlier
        };
        for shift in sync.decide(&mut tracks, at, force) {
            self.muxer.shift_track(shift)?;
        }
        Ok(())
    }

    /// Places for good every track still placed provisionally, whichever publisher it is of.
    fn decide_every_run(&mut self, now: Instant) -> Result<()> {
        let at = nanos_since(self.origin, now);
        let runs = [self.audio.as_ref(), self.video.as_ref()].map(|t| t.map(|t| t.run()));
        for run in runs.into_iter().flatten() {
            self.decide_sync(run, at, true)?;
        }
        Ok(())
    }

    fn flush_track(&mut self, kind: MediaKind, now: Instant) -> Result<()> {
        if let Some(track) = self.track_mut(kind) {
            track.push_flush_sentinel(now);
        }
        self.drain(kind, now)
    }

    /// Moves every complete frame of a track into the muxer.
    fn drain(&mut self, kind: MediaKind, now: Instant) -> Result<()> {
        loop {
            let track = match kind {
                MediaKind::Audio => self.audio.as_mut(),
                MediaKind::Video => self.video.as_mut(),
            };
            let Some(track) = track else { return Ok(()) };
            let Some(frame) = track.pop(now) else {
                return Ok(());
            };
            if track.clock.placement() == Placement::Unplaced {
                // The track's first frame: from here on it is written, placed by arrivals
                // until its sender reports place it for good.
                track.clock.place_provisionally();
                self.muxer.track_may_move(kind);
            }
            let Some(at) = track.clock.to_local(frame.rtp) else {
                continue;
            };
            if kind == MediaKind::Video
                && self.muxer.waiting_for_first_keyframe()
                && !frame.keyframe
            {
                continue;
            }
            let TrackFrame {
                data,
                keyframe,
                duration_ms,
                video,
                ..
            } = frame;
            self.muxer.push(MuxFrame {
                kind,
                at,
                data,
                keyframe,
                duration_ms,
                video,
            })?;
        }
    }

    fn request_keyframe_if_needed(&mut self, at: Nanos) {
        let Some(video) = &self.video else { return };
        if !video.wants_keyframe() {
            return;
        }
        let due = self
            .last_keyframe_request
            .is_none_or(|last| at - last >= KEYFRAME_REQUEST_INTERVAL.as_nanos() as i64);
        if due {
            self.last_keyframe_request = Some(at);
            self.stats.keyframe_requests += 1;
            self.outputs.push_back(RecorderOutput::KeyframeNeeded);
        }
    }
}

/// Opens `{dir}/{stream}/{UTC time}.{ext}`, adding `-1`, `-2`... if that name is taken.
fn open_muxer(
    dir: &Path,
    stream: &str,
    tracks: RecordingTracks,
    wall: SystemTime,
) -> Result<Muxer> {
    let folder = dir.join(stream);
    std::fs::create_dir_all(&folder)
        .map_err(|source| RecorderError::io("cannot create", &folder, source))?;
    let stamp = file_stamp(wall);
    let mut attempt = 0;
    loop {
        let name = match attempt {
            0 => format!("{stamp}.{}", tracks.extension()),
            n => format!("{stamp}-{n}.{}", tracks.extension()),
        };
        match Muxer::create(folder.join(name), stream, tracks, wall) {
            Err(RecorderError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// `2026-11-22T00-41-07Z`: RFC 3339 in UTC with `-` for `:`, which file systems dislike.
pub(crate) fn file_stamp(wall: SystemTime) -> String {
    let t = time::OffsetDateTime::from(wall);
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

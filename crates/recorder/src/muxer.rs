//! Turns timestamped frames of both tracks into the recording's clusters: holds frames
//! briefly to write them in time order, writes the file header once the first video
//! keyframe tells the picture size (and, for H264, the parameter sets), starts a cluster at
//! every video keyframe and at least every 5 s, and keeps the cue points and track ends
//! that finishing needs. A track placed provisionally (see `sync`) can be moved once, as a
//! whole: its queued frames, its blocks in the open cluster and — through the positions
//! kept for it — its blocks already in the file. Owns the open file; does not own RTP,
//! reassembly or clocks.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use directo_sfu::{Codec, MediaKind};
use mkv_element::ClusterBlock;
use mkv_element::prelude::*;

use crate::RecordingTracks;
use crate::bitstream::{VideoFrameInfo, avc_decoder_configuration};
use crate::clock::Nanos;
use crate::error::{RecorderError, Result};
use crate::matroska::{self, Cue, SegmentLayout};
use crate::sync::TrackShift;

/// Track number of the video track in every recording.
pub(crate) const VIDEO_TRACK: u64 = 1;
/// Track number of the audio track in every recording.
pub(crate) const AUDIO_TRACK: u64 = 2;
/// Longest a cluster may span; also how often a recording without keyframes gets a cue.
const MAX_CLUSTER_MS: u64 = 5_000;
/// How long frames wait so that a late frame of the other track is still written in order.
const INTERLEAVE_HOLD: Nanos = 300_000_000;
/// How much audio is kept while waiting for the first video keyframe.
const MAX_PREROLL: Nanos = 10_000_000_000;
/// Seconds between the Unix epoch and Matroska's (2001-01-01T00:00:00Z).
const MATROSKA_EPOCH_UNIX: u64 = 978_307_200;

/// One frame ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct MuxFrame {
    pub kind: MediaKind,
    /// Capture time on the recorder's clock.
    pub at: Nanos,
    pub data: Bytes,
    pub keyframe: bool,
    /// Play time of an audio frame, in milliseconds, when known.
    pub duration_ms: Option<f64>,
    /// Keyframe facts (size, H264 parameter sets).
    pub video: Option<VideoFrameInfo>,
}

/// A block of the open cluster, encoded when the cluster is written.
struct DraftBlock {
    track: u64,
    ms: u64,
    keyframe: bool,
    data: Bytes,
}

struct OpenCluster {
    start_ms: u64,
    blocks: Vec<DraftBlock>,
}

/// A block in the file whose track may still move: where its timestamp is.
#[derive(Debug, Clone, Copy)]
struct WrittenBlock {
    track: u64,
    pos: u64,
    relative: i16,
}

/// The time a track has been written up to.
#[derive(Debug, Default, Clone, Copy)]
struct TrackEnd {
    last_ms: Option<u64>,
    /// Length of the last frame: its own duration for audio, the last gap for video.
    last_len_ms: f64,
}

impl TrackEnd {
    fn end_ms(&self) -> f64 {
        self.last_ms.map_or(0.0, |ms| ms as f64 + self.last_len_ms)
    }
}

/// Where a muxer's bytes go.
pub(crate) enum Sink {
    /// A recording file: clusters are written whole, moved tracks are rewritten in place,
    /// finishing adds Cues and Duration.
    File(File),
    /// A live stream (a pipe to an encoder): nothing written is ever rewritten. Clusters
    /// have an unknown size and each block is written the moment it is released, so the
    /// reader gets frames without waiting for the cluster to end; a track placed for good
    /// moves from its next frame on (see [`Muxer::shift_track`]).
    Live(Box<dyn Write + Send>),
}

/// The recording file and everything needed to append to it and finish it.
pub(crate) struct Muxer {
    path: PathBuf,
    sink: Sink,
    tracks: RecordingTracks,
    info: Info,
    layout: Option<SegmentLayout>,
    queue: VecDeque<MuxFrame>,
    newest: Option<Nanos>,
    epoch: Option<Nanos>,
    cluster: Option<OpenCluster>,
    written: u64,
    cues: Vec<Cue>,
    video_end: TrackEnd,
    audio_end: TrackEnd,
    /// Tracks that may still move, and their blocks already in the file.
    movable: Vec<u64>,
    movable_blocks: Vec<WrittenBlock>,
}

/// The track number of `kind` in every recording.
fn track_number(kind: MediaKind) -> u64 {
    match kind {
        MediaKind::Video => VIDEO_TRACK,
        MediaKind::Audio => AUDIO_TRACK,
    }
}

impl Muxer {
    /// Creates the recording file (it must not exist yet).
    pub(crate) fn create(
        path: PathBuf,
        stream: &str,
        tracks: RecordingTracks,
        started: SystemTime,
    ) -> Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| RecorderError::io("cannot create", &path, source))?;
        Ok(Muxer::with_sink(
            path,
            Sink::File(file),
            stream,
            tracks,
            started,
        ))
    }

    /// A muxer writing a live stream to `out`; `name` only labels errors.
    pub(crate) fn live(
        name: PathBuf,
        out: Box<dyn Write + Send>,
        stream: &str,
        tracks: RecordingTracks,
        started: SystemTime,
    ) -> Self {
        Muxer::with_sink(name, Sink::Live(out), stream, tracks, started)
    }

    fn with_sink(
        path: PathBuf,
        sink: Sink,
        stream: &str,
        tracks: RecordingTracks,
        started: SystemTime,
    ) -> Self {
        let unix = started.duration_since(UNIX_EPOCH).unwrap_or_default();
        let since_2001 = unix.as_nanos() as i128 - i128::from(MATROSKA_EPOCH_UNIX) * 1_000_000_000;
        let info = Info {
            timestamp_scale: TimestampScale(1_000_000),
            date_utc: Some(DateUtc(since_2001 as i64)),
            title: Some(Title(stream.to_string())),
            muxing_app: MuxingApp("directo-recorder".to_string()),
            writing_app: WritingApp(format!("directo {}", env!("CARGO_PKG_VERSION"))),
            ..Default::default()
        };
        Muxer {
            path,
            sink,
            tracks,
            info,
            layout: None,
            queue: VecDeque::new(),
            newest: None,
            epoch: None,
            cluster: None,
            written: 0,
            cues: Vec::new(),
            video_end: TrackEnd::default(),
            audio_end: TrackEnd::default(),
            movable: Vec::new(),
            movable_blocks: Vec::new(),
        }
    }

    /// Whether this muxer writes a live stream rather than a file.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.sink, Sink::Live(_))
    }

    /// The file being written.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The tracks this file was opened for.
    pub(crate) fn tracks(&self) -> RecordingTracks {
        self.tracks
    }

    /// Whether a video frame that is not a keyframe is of no use yet (no header written).
    pub(crate) fn waiting_for_first_keyframe(&self) -> bool {
        self.layout.is_none() && self.tracks.video.is_some()
    }

    /// Keeps where the blocks of `kind` are written until [`Self::shift_track`] moves it.
    pub(crate) fn track_may_move(&mut self, kind: MediaKind) {
        let track = track_number(kind);
        if !self.movable.contains(&track) {
            self.movable.push(track);
        }
    }

    /// Moves every frame of a track by `shift.ms` — queued, in the open cluster, or already
    /// in the file — and stops keeping its block positions. Later frames arrive moved.
    pub(crate) fn shift_track(&mut self, shift: TrackShift) -> Result<()> {
        let track = track_number(shift.kind);
        let moved = |ms: u64| u64::try_from(ms as i64 + shift.ms).unwrap_or(0);
        for frame in self.queue.iter_mut().filter(|f| f.kind == shift.kind) {
            frame.at += shift.ms * 1_000_000;
        }
        self.queue.make_contiguous().sort_by_key(|f| f.at);
        if let Some(last) = self.queue.back() {
            self.newest = Some(self.newest.map_or(last.at, |newest| newest.max(last.at)));
        }
        if let Some(cluster) = &mut self.cluster {
            for block in cluster.blocks.iter_mut().filter(|b| b.track == track) {
                block.ms = moved(block.ms);
            }
        }
        let end = match shift.kind {
            MediaKind::Video => &mut self.video_end,
            MediaKind::Audio => &mut self.audio_end,
        };
        end.last_ms = end.last_ms.map(moved);
        for cue in self.cues.iter_mut().filter(|c| c.track == track) {
            cue.time = moved(cue.time);
        }
        let mut rewrites: Vec<(u64, i16)> = self
            .movable_blocks
            .iter()
            .filter(|b| b.track == track)
            .map(|b| {
                let relative = (i64::from(b.relative) + shift.ms)
                    .clamp(i64::from(i16::MIN), i64::from(i16::MAX));
                (b.pos, relative as i16)
            })
            .collect();
        if shift.ms > 0 {
            // Latest first (earliest first when moving back): a crash half way leaves the
            // track with one gap, never with timestamps going backwards.
            rewrites.reverse();
        }
        if let Sink::File(file) = &mut self.sink {
            matroska::rewrite_block_timestamps(file, &self.path, rewrites)?;
        }
        self.movable_blocks.retain(|b| b.track != track);
        self.movable.retain(|&t| t != track);
        Ok(())
    }

    /// Takes one frame; writes whatever is old enough to be in order.
    pub(crate) fn push(&mut self, frame: MuxFrame) -> Result<()> {
        if self.layout.is_none() {
            match frame.kind {
                MediaKind::Video if !frame.keyframe => return Ok(()),
                MediaKind::Video => {
                    if !self.write_header(frame.video.as_ref())? {
                        return Ok(());
                    }
                }
                MediaKind::Audio if self.tracks.video.is_none() => {
                    self.write_header(None)?;
                }
                MediaKind::Audio => {}
            }
        }
        let position = self.queue.partition_point(|queued| queued.at <= frame.at);
        self.newest = Some(self.newest.map_or(frame.at, |newest| newest.max(frame.at)));
        self.queue.insert(position, frame);
        if self.layout.is_none() {
            // Audio before the first picture: keep a bounded preroll.
            while let (Some(first), Some(newest)) = (self.queue.front(), self.newest) {
                if newest - first.at <= MAX_PREROLL {
                    break;
                }
                self.queue.pop_front();
            }
            return Ok(());
        }
        self.release(false)
    }

    /// Writes queued frames: those older than the interleave hold, or all if `all`.
    fn release(&mut self, all: bool) -> Result<()> {
        let Some(newest) = self.newest else {
            return Ok(());
        };
        while let Some(first) = self.queue.front() {
            if !all && newest - first.at < INTERLEAVE_HOLD {
                break;
            }
            if let Some(frame) = self.queue.pop_front() {
                self.write_frame(frame)?;
            }
        }
        Ok(())
    }

    /// Writes the file header; `false` if the keyframe lacks what the header needs.
    fn write_header(&mut self, keyframe: Option<&VideoFrameInfo>) -> Result<bool> {
        let mut entries = Vec::new();
        if let Some(codec) = self.tracks.video {
            let Some(keyframe) = keyframe else {
                return Ok(false);
            };
            let codec_private = match codec {
                Codec::H264 => {
                    let (Some(sps), Some(pps)) = (&keyframe.sps, &keyframe.pps) else {
                        return Ok(false);
                    };
                    let Some(avcc) = avc_decoder_configuration(sps, pps) else {
                        return Ok(false);
                    };
                    Some(CodecPrivate(avcc))
                }
                _ => None,
            };
            let (width, height) = keyframe.size.unwrap_or((0, 0));
            entries.push(TrackEntry {
                track_number: TrackNumber(VIDEO_TRACK),
                track_uid: TrackUid(VIDEO_TRACK),
                track_type: TrackType(1),
                flag_lacing: FlagLacing(0),
                codec_id: CodecId(codec_id(codec).to_string()),
                codec_private,
                video: Some(Video {
                    pixel_width: PixelWidth(u64::from(width)),
                    pixel_height: PixelHeight(u64::from(height)),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if self.tracks.audio.is_some() {
            entries.push(TrackEntry {
                track_number: TrackNumber(AUDIO_TRACK),
                track_uid: TrackUid(AUDIO_TRACK),
                track_type: TrackType(2),
                flag_lacing: FlagLacing(0),
                codec_id: CodecId(codec_id(Codec::Opus).to_string()),
                codec_private: Some(CodecPrivate(opus_head())),
                seek_pre_roll: SeekPreRoll(80_000_000),
                audio: Some(Audio {
                    sampling_frequency: SamplingFrequency(48_000.0),
                    channels: Channels(2),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let tracks = Tracks {
            track_entry: entries,
            ..Default::default()
        };
        let doc_type = if self.tracks.video == Some(Codec::H264) {
            "matroska"
        } else {
            "webm"
        };
        let layout = match &mut self.sink {
            Sink::File(file) => {
                matroska::write_header(file, &self.path, doc_type, &self.info, &tracks)?
            }
            Sink::Live(out) => {
                let layout =
                    matroska::write_header(out, &self.path, doc_type, &self.info, &tracks)?;
                out.flush()
                    .map_err(|source| RecorderError::io("cannot write", &self.path, source))?;
                layout
            }
        };
        self.written = layout.tracks_pos + matroska::encode(&tracks)?.len() as u64;
        self.layout = Some(layout);
        Ok(true)
    }

    fn write_frame(&mut self, frame: MuxFrame) -> Result<()> {
        let epoch = *self.epoch.get_or_insert(frame.at);
        if frame.at < epoch {
            return Ok(());
        }
        let track = track_number(frame.kind);
        let end = match frame.kind {
            MediaKind::Video => &mut self.video_end,
            MediaKind::Audio => &mut self.audio_end,
        };
        let mut ms = ((frame.at - epoch) as u64 + 500_000) / 1_000_000;
        if let Some(last) = end.last_ms {
            // Never let a track go backwards, even when its clock mapping was refined.
            ms = ms.max(last + 1);
            if frame.kind == MediaKind::Video {
                end.last_len_ms = (ms - last) as f64;
            }
        }
        end.last_ms = Some(ms);
        if let Some(duration) = frame.duration_ms {
            end.last_len_ms = duration;
        }

        let starts_cluster = match &self.cluster {
            None => true,
            Some(cluster) => {
                (frame.kind == MediaKind::Video && frame.keyframe && !cluster.blocks.is_empty())
                    || ms >= cluster.start_ms + MAX_CLUSTER_MS
            }
        };
        if starts_cluster {
            self.flush_cluster()?;
            if let Sink::Live(out) = &mut self.sink {
                let bytes = matroska::live_cluster_start(ms)?;
                out.write_all(&bytes)
                    .map_err(|source| RecorderError::io("cannot write", &self.path, source))?;
                self.written += bytes.len() as u64;
            }
            let cue_track = if self.tracks.video.is_some() {
                VIDEO_TRACK
            } else {
                AUDIO_TRACK
            };
            if track == cue_track && frame.keyframe {
                self.cues.push(Cue {
                    time: ms,
                    track,
                    cluster_pos: self.written - self.layout.map_or(0, |l| l.data_start),
                });
            }
            self.cluster = Some(OpenCluster {
                start_ms: ms,
                blocks: Vec::new(),
            });
        }
        let Some(cluster) = &mut self.cluster else {
            return Ok(());
        };
        let draft = DraftBlock {
            track,
            ms,
            keyframe: frame.keyframe,
            data: frame.data,
        };
        match &mut self.sink {
            Sink::File(_) => cluster.blocks.push(draft),
            Sink::Live(out) => {
                let block = simple_block(&draft, cluster.start_ms);
                let bytes = matroska::encode(&block)?;
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .map_err(|source| RecorderError::io("cannot write", &self.path, source))?;
                self.written += bytes.len() as u64;
            }
        }
        Ok(())
    }

    /// Appends the open cluster to the file in one write, so a crash never splits one
    /// cluster's bytes across a finished file's structure.
    fn flush_cluster(&mut self) -> Result<()> {
        let Some(open) = self.cluster.take() else {
            return Ok(());
        };
        if open.blocks.is_empty() {
            return Ok(());
        }
        let blocks = open
            .blocks
            .iter()
            .map(|draft| ClusterBlock::Simple(simple_block(draft, open.start_ms)))
            .collect();
        let bytes = matroska::encode(&Cluster {
            timestamp: Timestamp(open.start_ms),
            blocks,
            ..Default::default()
        })?;
        let Sink::File(file) = &mut self.sink else {
            return Ok(());
        };
        file.write_all(&bytes)
            .map_err(|source| RecorderError::io("cannot write", &self.path, source))?;
        if !self.movable.is_empty() {
            let start = self.written;
            self.movable_blocks.extend(
                matroska::block_timestamps(&bytes)
                    .into_iter()
                    .filter(|b| self.movable.contains(&b.track))
                    .map(|b| WrittenBlock {
                        track: b.track,
                        pos: start + b.offset,
                        relative: b.relative,
                    }),
            );
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes every held frame, and ends the file with Cues and Duration. Returns the file
    /// size, or `None` if nothing was ever written (the empty file is removed).
    pub(crate) fn finish(mut self) -> Result<Option<u64>> {
        if self.is_live() {
            // A live stream ends where it is: what is held is written, nothing is indexed.
            if self.layout.is_some() {
                self.release(true)?;
            }
            return Ok(None);
        }
        if self.layout.is_none() {
            // No picture ever arrived: keep the sound as an audio-only recording.
            self.tracks.video = None;
            self.queue.retain(|f| f.kind == MediaKind::Audio);
            if !self.queue.is_empty() {
                self.write_header(None)?;
            }
        }
        let Some(layout) = self.layout else {
            drop(self.sink);
            std::fs::remove_file(&self.path)
                .map_err(|source| RecorderError::io("cannot remove", &self.path, source))?;
            return Ok(None);
        };
        self.release(true)?;
        self.flush_cluster()?;
        let duration = self.video_end.end_ms().max(self.audio_end.end_ms());
        let Sink::File(file) = &mut self.sink else {
            return Ok(None);
        };
        let size = matroska::finish(
            file,
            &self.path,
            &layout,
            &self.info,
            duration,
            self.written,
            &self.cues,
        )?;
        Ok(Some(size))
    }
}

/// A draft block as a SimpleBlock of a cluster starting at `cluster_ms`. A block moved
/// before its cluster started gets a negative relative timestamp, which Matroska allows.
fn simple_block(draft: &DraftBlock, cluster_ms: u64) -> SimpleBlock {
    let relative = (draft.ms as i64 - cluster_ms as i64)
        .clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16;
    let mut block = BytesMut::with_capacity(4 + draft.data.len());
    block.put_u8(0x80 | draft.track as u8);
    block.put_i16(relative);
    block.put_u8(if draft.keyframe { 0x80 } else { 0 });
    block.put_slice(&draft.data);
    SimpleBlock(block.freeze())
}

/// The Matroska CodecID of a codec.
pub(crate) fn codec_id(codec: Codec) -> &'static str {
    match codec {
        Codec::Opus => "A_OPUS",
        Codec::Vp8 => "V_VP8",
        Codec::Vp9 => "V_VP9",
        Codec::H264 => "V_MPEG4/ISO/AVC",
    }
}

/// The codec a Matroska CodecID names, among those this crate records.
pub(crate) fn codec_from_id(id: &str) -> Option<Codec> {
    [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264]
        .into_iter()
        .find(|&codec| codec_id(codec) == id)
}

/// The Opus identification header (RFC 7845 5.1) that WebM requires as CodecPrivate:
/// WebRTC Opus is always signalled as two channels at 48 kHz.
fn opus_head() -> Bytes {
    let mut head = BytesMut::with_capacity(19);
    head.put_slice(b"OpusHead");
    head.put_u8(1);
    head.put_u8(2);
    head.put_u16_le(0);
    head.put_u32_le(48_000);
    head.put_i16_le(0);
    head.put_u8(0);
    head.freeze()
}

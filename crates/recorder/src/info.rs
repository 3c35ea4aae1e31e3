//! Reading recordings back: [`RecordingInfo`] (what a listing of recordings shows) and
//! [`recover`], which completes a recording whose writer died (SIGKILL, power cut) so that
//! players can seek in it. Both read the layout described in [`crate::matroska`].

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use directo_sfu::Codec;
use mkv_element::FrameData;

use crate::bitstream::opus_packet_samples;
use crate::error::{RecorderError, Result};
use crate::matroska::{self, ClusterEntry, Cue, Scanned};
use crate::muxer::codec_from_id;

/// Seconds between the Unix epoch and Matroska's (2001-01-01T00:00:00Z).
const MATROSKA_EPOCH_UNIX: u64 = 978_307_200;

/// What a recording holds, read from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingInfo {
    /// The file.
    pub path: PathBuf,
    /// The stream it recorded.
    pub stream: String,
    /// When recording started (wall clock).
    pub started_at: SystemTime,
    /// How long it plays. Estimated from the last cluster while it is still being written.
    pub duration: Duration,
    /// File size in bytes.
    pub size: u64,
    /// Audio codec, if it has sound.
    pub audio: Option<Codec>,
    /// Video codec, if it has pictures.
    pub video: Option<Codec>,
    /// Picture size in pixels, if it has pictures.
    pub video_size: Option<(u32, u32)>,
    /// Whether it has its index (Cues) and Duration: finished or recovered. A file being
    /// written, or left by a crash, has not.
    pub seekable: bool,
}

impl RecordingInfo {
    /// Reads a recording's facts. Cheap: reads the headers, and at most the last cluster.
    pub fn read(path: impl AsRef<Path>) -> Result<RecordingInfo> {
        let path = path.as_ref();
        let mut file =
            File::open(path).map_err(|source| RecorderError::io("cannot open", path, source))?;
        let scanned = matroska::scan(&mut file, path)?;
        let duration_ms = match scanned.info.duration {
            Some(duration) if scanned.has_cues => *duration,
            _ => {
                let last = scanned.clusters.last().copied();
                analyze(&mut file, path, &scanned, last.as_slice())?.duration_ms
            }
        };
        Ok(describe(path, &scanned, duration_ms))
    }
}

/// Lists the recordings under `dir` (laid out as `{dir}/{stream}/{start}.webm|mkv`), oldest
/// first. Files that cannot be read are skipped (and logged).
pub fn list_recordings(dir: impl AsRef<Path>) -> Result<Vec<RecordingInfo>> {
    let dir = dir.as_ref();
    let read_dir = |path: &Path| {
        std::fs::read_dir(path).map_err(|source| RecorderError::io("cannot list", path, source))
    };
    let mut found = Vec::new();
    for stream in read_dir(dir)?.flatten() {
        if !stream.path().is_dir() {
            continue;
        }
        for entry in read_dir(&stream.path())?.flatten() {
            let path = entry.path();
            let is_recording = path
                .extension()
                .is_some_and(|ext| ext == "webm" || ext == "mkv");
            if !is_recording {
                continue;
            }
            match RecordingInfo::read(&path) {
                Ok(info) => found.push(info),
                Err(error) => tracing::warn!(%error, "skipping unreadable recording"),
            }
        }
    }
    found.sort_by(|a, b| {
        a.started_at
            .cmp(&b.started_at)
            .then_with(|| a.path.cmp(&b.path))
    });
    Ok(found)
}

/// Completes a recording left unfinished by a crash: drops a cluster cut short at the end
/// of the file, and writes Cues, Duration, SeekHead and the Segment size, so the file
/// becomes seekable. Finished recordings are rewritten to the same content.
pub fn recover(path: impl AsRef<Path>) -> Result<RecordingInfo> {
    let path = path.as_ref();
    let mut file = File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| RecorderError::io("cannot open", path, source))?;
    let scanned = matroska::scan(&mut file, path)?;
    let clusters = scanned.clusters.clone();
    let analysis = analyze(&mut file, path, &scanned, &clusters)?;
    matroska::finish(
        &mut file,
        path,
        &scanned.layout,
        &scanned.info,
        analysis.duration_ms,
        scanned.clusters_end,
        &analysis.cues,
    )?;
    drop(file);
    RecordingInfo::read(path)
}

struct Analysis {
    cues: Vec<Cue>,
    duration_ms: f64,
}

/// Walks clusters' blocks: cue points at keyframes that start a cluster, and track ends.
fn analyze(
    file: &mut File,
    path: &Path,
    scanned: &Scanned,
    clusters: &[ClusterEntry],
) -> Result<Analysis> {
    // Track number -> (is video, codec).
    let tracks: HashMap<u64, (bool, Option<Codec>)> = scanned
        .tracks
        .track_entry
        .iter()
        .map(|t| {
            (
                *t.track_number,
                (*t.track_type == 1, codec_from_id(&t.codec_id)),
            )
        })
        .collect();
    let cue_track = tracks
        .iter()
        .filter(|(_, (video, _))| *video)
        .map(|(n, _)| *n)
        .min()
        .or_else(|| tracks.keys().min().copied());
    let mut ends: HashMap<u64, (i64, f64)> = HashMap::new();
    let mut cues = Vec::new();
    for entry in clusters {
        let cluster = matroska::read_cluster(file, path, entry)?;
        let mut first_of_cue_track = true;
        for frame in cluster.frames() {
            let frame = frame
                .map_err(|e| RecorderError::malformed(path, format!("unreadable block: {e}")))?;
            let ms = frame.timestamp.max(0);
            let (is_video, codec) = tracks
                .get(&frame.track_number)
                .copied()
                .unwrap_or((false, None));
            if Some(frame.track_number) == cue_track && first_of_cue_track {
                first_of_cue_track = false;
                if frame.is_keyframe {
                    cues.push(Cue {
                        time: ms as u64,
                        track: frame.track_number,
                        cluster_pos: entry.pos - scanned.layout.data_start,
                    });
                }
            }
            let own_length = match (&frame.data, codec) {
                (FrameData::Single(data), Some(Codec::Opus)) if !is_video => {
                    opus_packet_samples(data).map(|samples| f64::from(samples) / 48.0)
                }
                _ => None,
            };
            let end = ends.entry(frame.track_number).or_insert((ms, 0.0));
            let gap = (ms - end.0) as f64;
            *end = (
                ms,
                own_length.unwrap_or(if gap > 0.0 { gap } else { end.1 }),
            );
        }
    }
    let duration_ms = ends
        .values()
        .map(|(last, length)| *last as f64 + length)
        .fold(0.0, f64::max);
    Ok(Analysis { cues, duration_ms })
}

fn describe(path: &Path, scanned: &Scanned, duration_ms: f64) -> RecordingInfo {
    let stream = scanned
        .info
        .title
        .as_ref()
        .map(|t| t.0.clone())
        .or_else(|| {
            path.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let started_at = scanned.info.date_utc.as_ref().map_or(UNIX_EPOCH, |date| {
        let unix_nanos = i128::from(date.0) + i128::from(MATROSKA_EPOCH_UNIX) * 1_000_000_000;
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(unix_nanos).unwrap_or(0))
    });
    let mut info = RecordingInfo {
        path: path.to_path_buf(),
        stream,
        started_at,
        duration: Duration::from_secs_f64(duration_ms.max(0.0) / 1000.0),
        size: scanned.file_size,
        audio: None,
        video: None,
        video_size: None,
        seekable: scanned.has_cues && scanned.info.duration.is_some(),
    };
    for track in &scanned.tracks.track_entry {
        let codec = codec_from_id(&track.codec_id);
        match *track.track_type {
            1 => {
                info.video = codec;
                info.video_size = track
                    .video
                    .as_ref()
                    .map(|v| (*v.pixel_width as u32, *v.pixel_height as u32));
            }
            2 => info.audio = codec,
            _ => {}
        }
    }
    info
}

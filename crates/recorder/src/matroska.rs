//! The recording's byte layout, on top of `mkv-element`'s typed elements: the file header
//! written when recording starts, clusters appended one whole element at a time (their block
//! timestamps rewritten in place when a track is moved, see `sync`), and the finishing pass
//! (Cues, Duration, SeekHead, Segment size) shared by a clean finish and by
//! [`crate::recover`]. Also the scanner that reads that layout back.
//!
//! The layout is what makes a recording crash-safe:
//!
//! ```text
//! EBML header (DocType webm, or matroska for H264)
//! Segment, size "unknown" in an 8-byte field (patched to the real size when finished)
//!   Info (TimestampScale 1 ms, DateUTC, Title = stream name; Duration added when finished)
//!   Void, reserved for Info's Duration and the SeekHead written when finished
//!   Tracks
//!   Cluster, Cluster, ...   each written in one piece once complete, with its size
//!   Cues                    written when finished
//! ```
//!
//! While recording, a reader sees a live-style WebM (unknown segment size, no index) that
//! plays up to the last complete cluster; a process killed at any byte leaves a file that
//! decodes up to its last complete cluster, and [`finish`] can later be applied to it.

use std::fs::File;
use std::io::{Read, Seek as _, SeekFrom, Write};
use std::path::Path;

use mkv_element::io::blocking_impl::{ReadElement, WriteTo};
use mkv_element::prelude::*;

use crate::error::{RecorderError, Result};

/// Element ID of Segment, as written in the file.
const SEGMENT_ID: [u8; 4] = [0x18, 0x53, 0x80, 0x67];
/// Size of the Void reserved after Info; enough for Duration plus a three-entry SeekHead.
const FRONT_RESERVE: usize = 128;
/// Bytes of a Void header whose size field is 8 bytes long (the smallest Void we write).
const VOID_HEADER: usize = 9;

/// Element ID of Cluster.
const CLUSTER_ID: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];

/// The start of a live cluster: its ID, an unknown size (it ends where the next top-level
/// element begins) and its Timestamp; its blocks follow one by one.
pub(crate) fn live_cluster_start(ms: u64) -> Result<Vec<u8>> {
    let mut out = CLUSTER_ID.to_vec();
    out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    out.extend_from_slice(&encode(&Timestamp(ms))?);
    Ok(out)
}

/// Where the parts of a recording sit in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentLayout {
    /// Offset of the Segment's size field.
    pub size_pos: u64,
    /// Length of that size field in bytes.
    pub size_len: usize,
    /// Offset of the Segment's first child; positions in SeekHead and Cues count from here.
    pub data_start: u64,
    /// Offset of the Tracks element; everything before it is rewritten when finishing.
    pub tracks_pos: u64,
}

/// Encodes an element (header and body) into bytes.
pub(crate) fn encode<E: Element>(element: &E) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    element.write_to(&mut out)?;
    Ok(out)
}

/// A Void element of exactly `len` bytes (`len` must be 0 or at least [`VOID_HEADER`]).
fn void_bytes(len: usize) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    let mut out = vec![0u8; len];
    out[0] = 0xEC;
    out[1..9].copy_from_slice(&vint8((len - VOID_HEADER) as u64));
    out
}

/// `value` as an EBML variable-size integer stretched to 8 bytes.
fn vint8(value: u64) -> [u8; 8] {
    let mut bytes = value.to_be_bytes();
    bytes[0] = 0x01;
    bytes
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RecorderError + 'a {
    move |source| RecorderError::io(action, path, source)
}

/// Writes the EBML header, the Segment start, Info, the reserved Void and Tracks.
pub(crate) fn write_header(
    file: &mut impl Write,
    path: &Path,
    doc_type: &str,
    info: &Info,
    tracks: &Tracks,
) -> Result<SegmentLayout> {
    let ebml = Ebml {
        ebml_version: Some(EbmlVersion(1)),
        ebml_read_version: Some(EbmlReadVersion(1)),
        ebml_max_id_length: EbmlMaxIdLength(4),
        ebml_max_size_length: EbmlMaxSizeLength(8),
        doc_type: Some(DocType(doc_type.to_string())),
        doc_type_version: Some(DocTypeVersion(4)),
        doc_type_read_version: Some(DocTypeReadVersion(2)),
        ..Default::default()
    };
    let mut out = encode(&ebml)?;
    out.extend_from_slice(&SEGMENT_ID);
    let size_pos = out.len() as u64;
    // All value bits set: "unknown size", so the segment reads to the end of the file.
    out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    let data_start = out.len() as u64;
    out.extend_from_slice(&encode(info)?);
    out.extend_from_slice(&void_bytes(FRONT_RESERVE));
    let tracks_pos = out.len() as u64;
    out.extend_from_slice(&encode(tracks)?);
    file.write_all(&out).map_err(io_err("cannot write", path))?;
    Ok(SegmentLayout {
        size_pos,
        size_len: 8,
        data_start,
        tracks_pos,
    })
}

/// One cue: a keyframe (or, without video, a cluster start) a player can seek to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cue {
    /// Time in milliseconds.
    pub time: u64,
    /// Track number the cue belongs to.
    pub track: u64,
    /// Offset of the cluster holding it, relative to the segment data start.
    pub cluster_pos: u64,
}

/// Completes a recording: drops anything after `clusters_end`, appends Cues, rewrites the
/// front with Info (now with `duration_ms`) and a SeekHead, and sets the Segment size.
/// Returns the final file size.
pub(crate) fn finish(
    file: &mut File,
    path: &Path,
    layout: &SegmentLayout,
    info: &Info,
    duration_ms: f64,
    clusters_end: u64,
    cues: &[Cue],
) -> Result<u64> {
    let cues_element = Cues {
        cue_point: cues
            .iter()
            .map(|cue| CuePoint {
                cue_time: CueTime(cue.time),
                cue_track_positions: vec![CueTrackPositions {
                    cue_track: CueTrack(cue.track),
                    cue_cluster_position: CueClusterPosition(cue.cluster_pos),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let cues_bytes = if cues.is_empty() {
        Vec::new()
    } else {
        encode(&cues_element)?
    };

    let info = Info {
        duration: Some(Duration(duration_ms)),
        ..info.clone()
    };
    let info_bytes = encode(&info)?;
    let relative = |pos: u64| pos - layout.data_start;
    let mut seeks = vec![
        seek(Info::ID, 0),
        seek(Tracks::ID, relative(layout.tracks_pos)),
    ];
    if !cues_bytes.is_empty() {
        seeks.push(seek(Cues::ID, relative(clusters_end)));
    }
    let seek_head = encode(&SeekHead {
        seek: seeks,
        ..Default::default()
    })?;
    let front_len = (layout.tracks_pos - layout.data_start) as usize;
    let used = info_bytes.len() + seek_head.len();
    let fill = front_len
        .checked_sub(used)
        .filter(|&fill| fill == 0 || fill >= VOID_HEADER)
        .ok_or_else(|| {
            RecorderError::malformed(
                path,
                "no room before Tracks for the index (not written by this recorder)",
            )
        })?;
    let mut front = info_bytes;
    front.extend_from_slice(&seek_head);
    front.extend_from_slice(&void_bytes(fill));

    let end = clusters_end + cues_bytes.len() as u64;
    let segment_size = end - layout.data_start;
    let size_field = match layout.size_len {
        8 => vint8(segment_size).to_vec(),
        len if segment_size < (1u64 << (7 * len)) - 1 => {
            let bytes = segment_size.to_be_bytes();
            let mut field = bytes[8 - len..].to_vec();
            field[0] |= 0x80 >> (len - 1);
            field
        }
        _ => {
            return Err(RecorderError::malformed(
                path,
                "segment size field too short for the finished file",
            ));
        }
    };

    let write = |file: &mut File, pos: u64, bytes: &[u8]| -> std::io::Result<()> {
        file.seek(SeekFrom::Start(pos))?;
        file.write_all(bytes)
    };
    (|| -> std::io::Result<()> {
        file.set_len(clusters_end)?;
        write(file, clusters_end, &cues_bytes)?;
        write(file, layout.data_start, &front)?;
        write(file, layout.size_pos, &size_field)?;
        file.flush()
    })()
    .map_err(io_err("cannot finish", path))?;
    Ok(end)
}

fn seek(id: VInt64, position: u64) -> Seek {
    let raw = id.as_encoded();
    let len = (64 - raw.leading_zeros()).div_ceil(8) as usize;
    Seek {
        seek_id: SeekId(bytes::Bytes::copy_from_slice(&raw.to_be_bytes()[8 - len..])),
        seek_position: SeekPosition(position),
        crc32: None,
        void: None,
    }
}

/// A SimpleBlock's timestamp as found in an encoded Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockTimestamp {
    /// Offset of the 16-bit relative timestamp within the cluster's bytes.
    pub offset: u64,
    /// The block's track number.
    pub track: u64,
    /// The timestamp, relative to the cluster's.
    pub relative: i16,
}

/// Where the timestamps of the SimpleBlocks in one encoded Cluster (header included) are,
/// so they can be rewritten in place later (see [`rewrite_block_timestamps`]).
pub(crate) fn block_timestamps(cluster: &[u8]) -> Vec<BlockTimestamp> {
    let mut found = Vec::new();
    let mut r = std::io::Cursor::new(cluster);
    let Ok(header) = read_header(&mut r) else {
        return found;
    };
    let end = header
        .size
        .map_or(cluster.len() as u64, |size| header.len + size);
    while r.position() < end {
        let Ok(child) = read_header(&mut r) else {
            break;
        };
        let Some(size) = child.size else { break };
        let body = r.position();
        if child.id == SimpleBlock::ID.as_encoded()
            && let Ok((track, track_len)) = read_vint(&mut r)
        {
            let mut timestamp = [0u8; 2];
            if r.read_exact(&mut timestamp).is_ok() {
                found.push(BlockTimestamp {
                    offset: body + track_len as u64,
                    track: track & ((1u64 << (7 * track_len)) - 1),
                    relative: i16::from_be_bytes(timestamp),
                });
            }
        }
        r.set_position(body + size);
    }
    found
}

/// Rewrites block timestamps already in the file: each `(file offset, relative timestamp)`,
/// in the order given; leaves the file positioned at its end, for appending.
pub(crate) fn rewrite_block_timestamps(
    file: &mut File,
    path: &Path,
    rewrites: impl IntoIterator<Item = (u64, i16)>,
) -> Result<()> {
    for (offset, relative) in rewrites {
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.write_all(&relative.to_be_bytes()))
            .map_err(io_err("cannot rewrite timestamps in", path))?;
    }
    file.seek(SeekFrom::End(0))
        .map_err(io_err("cannot rewrite timestamps in", path))?;
    Ok(())
}

/// A top-level element header as found in the file.
#[derive(Debug, Clone, Copy)]
struct RawHeader {
    /// The ID with its length marker, as `Element::ID.as_encoded()` spells it.
    id: u64,
    /// Body size; `None` for "unknown".
    size: Option<u64>,
    /// Length of the size field.
    size_len: usize,
    /// Length of ID plus size field.
    len: u64,
}

fn read_vint(r: &mut impl Read) -> std::io::Result<(u64, usize)> {
    let mut first = [0u8; 1];
    r.read_exact(&mut first)?;
    let len = first[0].leading_zeros() as usize + 1;
    if len > 8 {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let mut raw = u64::from(first[0]);
    let mut rest = [0u8; 7];
    r.read_exact(&mut rest[..len - 1])?;
    for &b in &rest[..len - 1] {
        raw = raw << 8 | u64::from(b);
    }
    Ok((raw, len))
}

fn read_header(r: &mut impl Read) -> std::io::Result<RawHeader> {
    let (id, id_len) = read_vint(r)?;
    if id_len > 4 {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let (raw_size, size_len) = read_vint(r)?;
    let value_bits = 7 * size_len as u32;
    let value = raw_size & ((1u64 << value_bits) - 1);
    let size = (value != (1u64 << value_bits) - 1).then_some(value);
    Ok(RawHeader {
        id,
        size,
        size_len,
        len: (id_len + size_len) as u64,
    })
}

/// A complete cluster found by [`scan`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClusterEntry {
    /// Offset of the cluster's header.
    pub pos: u64,
    /// Offset just past its body.
    pub end: u64,
}

/// What [`scan`] found in a recording.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub layout: SegmentLayout,
    pub info: Info,
    pub tracks: Tracks,
    pub clusters: Vec<ClusterEntry>,
    pub has_cues: bool,
    /// Offset just past the last complete cluster (past Tracks if there is none).
    pub clusters_end: u64,
    pub file_size: u64,
}

/// Reads a recording's structure: headers, and the position of every complete cluster.
/// Stops at the first element that is cut short or has an unknown size (a crash leaves one).
pub(crate) fn scan(file: &mut File, path: &Path) -> Result<Scanned> {
    let bad = |reason: &str| RecorderError::malformed(path, reason.to_string());
    let file_size = file.metadata().map_err(io_err("cannot read", path))?.len();
    file.seek(SeekFrom::Start(0))
        .map_err(io_err("cannot read", path))?;
    let ebml_header = read_header(file).map_err(|_| bad("no EBML header"))?;
    if ebml_header.id != Ebml::ID.as_encoded() {
        return Err(bad("no EBML header"));
    }
    let ebml = Ebml::read_element(&to_header(ebml_header), file)
        .map_err(|_| bad("unreadable EBML header"))?;
    let doc_type = ebml.doc_type.map(|d| d.0).unwrap_or_default();
    if doc_type != "webm" && doc_type != "matroska" {
        return Err(bad("not a WebM or Matroska file"));
    }
    let size_pos = ebml_header.len + ebml_header.size.unwrap_or(0) + 4;
    let segment = read_header(file).map_err(|_| bad("no Segment"))?;
    if segment.id != u64::from_be_bytes([0, 0, 0, 0, 0x18, 0x53, 0x80, 0x67]) {
        return Err(bad("no Segment after the EBML header"));
    }
    let data_start = size_pos + segment.size_len as u64;

    let mut pos = data_start;
    let mut info = None;
    let mut tracks = None;
    let mut tracks_pos = None;
    let mut clusters = Vec::new();
    let mut has_cues = false;
    loop {
        if file.seek(SeekFrom::Start(pos)).is_err() {
            break;
        }
        let Ok(header) = read_header(file) else { break };
        let Some(size) = header.size else { break };
        let end = pos + header.len + size;
        if end > file_size {
            break;
        }
        let body_header = to_header(header);
        if header.id == Info::ID.as_encoded() {
            info =
                Some(Info::read_element(&body_header, file).map_err(|_| bad("unreadable Info"))?);
        } else if header.id == Tracks::ID.as_encoded() {
            tracks = Some(
                Tracks::read_element(&body_header, file).map_err(|_| bad("unreadable Tracks"))?,
            );
            tracks_pos = Some(pos);
        } else if header.id == Cluster::ID.as_encoded() {
            clusters.push(ClusterEntry { pos, end });
        } else if header.id == Cues::ID.as_encoded() {
            has_cues = true;
        }
        pos = end;
    }
    let (Some(info), Some(tracks), Some(tracks_pos)) = (info, tracks, tracks_pos) else {
        return Err(bad("the file ends before its Info and Tracks"));
    };
    let clusters_end = match clusters.last() {
        Some(last) => last.end,
        None => tracks_end(file, tracks_pos)?,
    };
    Ok(Scanned {
        layout: SegmentLayout {
            size_pos,
            size_len: segment.size_len,
            data_start,
            tracks_pos,
        },
        info,
        tracks,
        clusters,
        has_cues,
        clusters_end,
        file_size,
    })
}

fn tracks_end(file: &mut File, tracks_pos: u64) -> Result<u64> {
    file.seek(SeekFrom::Start(tracks_pos))
        .and_then(|_| read_header(file))
        .map(|h| tracks_pos + h.len + h.size.unwrap_or(0))
        .map_err(|source| RecorderError::io("cannot read", "Tracks", source))
}

fn to_header(raw: RawHeader) -> Header {
    Header {
        id: VInt64::from_encoded(raw.id),
        size: raw.size.map_or(VInt64::new_unknown(), VInt64::new),
    }
}

/// Reads and decodes one complete cluster found by [`scan`].
pub(crate) fn read_cluster(file: &mut File, path: &Path, entry: &ClusterEntry) -> Result<Cluster> {
    file.seek(SeekFrom::Start(entry.pos))
        .map_err(io_err("cannot read", path))?;
    let header = read_header(file).map_err(io_err("cannot read", path))?;
    Cluster::read_element(&to_header(header), file).map_err(|e| {
        RecorderError::malformed(
            path,
            format!("unreadable cluster at byte {}: {e}", entry.pos),
        )
    })
}

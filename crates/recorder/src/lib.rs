//! The recorder: a publisher's RTP in, a WebM (VP8/VP9 + Opus) or Matroska (H264 + Opus)
//! file out, written while the stream is live.
//!
//! Pipeline: RTP packets of each track are reordered and reassembled into frames by the
//! `rtc` crate's `SampleBuilder` and depacketizers (`track`, `depacketizer`); each track is
//! placed on one timeline by a single offset, so it keeps its RTP spacing exactly (`clock`),
//! and the offsets between the tracks come from a fit over the publisher's sender reports
//! (`sender_reports`, `sync`); the muxer interleaves the frames into clusters (`muxer`) laid
//! out so that the file is playable while written and after a crash (`matroska`).
//! [`Recorder`] is the sans-IO core (time comes in as arguments, keyframe requests go out
//! through `poll_output`); [`RecorderHandle`] runs it on its own thread behind a bounded
//! channel that never blocks the forwarding path.
//!
//! Behaviour on bad networks:
//! - Reordering is absorbed within [`REORDER_WINDOW`]. A lost video packet drops frames until
//!   the next keyframe (and asks for one): a corrupt frame is never written. A lost audio
//!   packet leaves a gap; later audio keeps its own timestamps.
//! - RTP timestamps are unwrapped, so wraparound mid-recording is invisible.
//! - Sender reports that are off by tens of milliseconds (aiortc's) move no frame within a
//!   track; they are averaged, and the result moves each track once, as a whole.
//! - A publisher who reconnects (new SSRC, or [`Recorder::publisher_changed`]) continues the
//!   same file after a gap as long as the codecs match: timestamps stay monotonic because the
//!   timeline is the recorder's own clock, so the gap in the file is the real time the
//!   publisher was away. If the codecs differ, the file is finished and a new one begun.
//!
//! Why `mkv-element`: it is the maintained pure-Rust crate that gives typed Matroska
//! elements and EBML encoding/decoding with unknown-size headers, for both writing and the
//! reading that [`recover`] and [`RecordingInfo`] need. The `webm` crate (libwebm) was the
//! alternative, but its Rust API only accepts VP8/VP9/AV1 video (no `V_MPEG4/ISO/AVC`), needs
//! a C++ build, and its muxer writes Cues only in its final pass. The file layout on top of
//! the elements (unknown-size Segment, whole clusters, index written at the end) is ours; see
//! `matroska`.

mod bitstream;
mod clock;
mod depacketizer;
mod error;
mod handle;
mod info;
mod matroska;
mod muxer;
mod recorder;
pub mod replay;
mod sender_reports;
mod sync;
mod track;

pub use error::{RecorderError, Result};
pub use handle::{DEFAULT_CHANNEL_CAPACITY, RecorderEvent, RecorderHandle};
pub use info::{RecordingInfo, list_recordings, recover};
pub use recorder::{
    KEYFRAME_REQUEST_INTERVAL, Recorder, RecorderOutput, RecorderStats, RecordingTracks,
};
pub use track::REORDER_WINDOW;

//! Real encoded media for publishers: a few seconds made by ffmpeg at test time (see
//! [`crate::ffmpeg::make_test_media`]) and read back frame by frame with the recorder's own
//! source reader, ready to be packetized into RTP.

use crate::error::{ClientError, Result};
use crate::ffmpeg::{SourceVideo, make_test_media};
use directo_recorder::replay::{SourceFrame, read_source};
use directo_sfu::MediaKind;
use directo_testkit::scratch::scratch_dir;

/// Frames per second of every test source.
pub const SOURCE_FPS: u32 = 30;

/// A few seconds of real VP8 or H264 video and Opus audio, in memory.
#[derive(Debug, Clone)]
pub struct MediaSource {
    video: SourceVideo,
    frames: Vec<SourceFrame>,
}

impl MediaSource {
    /// Makes `seconds` of test picture and tone with a keyframe every `gop` frames (30 fps).
    /// The encoded file is read into memory and deleted.
    pub fn make(video: SourceVideo, seconds: u32, gop: u32) -> Result<Self> {
        let dir = scratch_dir("media-source")
            .map_err(|e| ClientError::Server(format!("cannot create a scratch dir: {e}")))?;
        let path = dir.join(format!("source.{}", video.extension()));
        let made = make_test_media(&path, video, seconds, gop)
            .map_err(ClientError::from)
            .and_then(|()| read_source(&path).map_err(ClientError::from));
        let _ = std::fs::remove_dir_all(&dir);
        let (_, mut frames) = made?;
        // Interleaved by time, as an encoder hands them out; a stable sort keeps file order
        // among frames of the same millisecond.
        frames.sort_by_key(|f| f.at_ms);
        Ok(MediaSource { video, frames })
    }

    /// The video codec.
    pub fn video(&self) -> SourceVideo {
        self.video
    }

    /// Every frame, audio and video interleaved in time order.
    pub fn frames(&self) -> &[SourceFrame] {
        &self.frames
    }

    /// The video frames' times, in ms, with whether each is a keyframe.
    pub fn video_frames(&self) -> Vec<(u64, bool)> {
        self.frames
            .iter()
            .filter(|f| f.kind == MediaKind::Video)
            .map(|f| (f.at_ms, f.keyframe))
            .collect()
    }
}

//! What the API says about a recording: `GET /api/recordings`.

use serde::{Deserialize, Serialize};

/// One recording as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingEntry {
    /// `{stream}/{file}`: the path below `/api/recordings/`.
    pub id: String,
    /// The stream it recorded.
    pub stream: String,
    /// When it started, seconds since the Unix epoch.
    pub start: u64,
    /// How long it plays, in seconds.
    pub duration: f64,
    /// File size in bytes.
    pub size: u64,
    /// Codec MIME types (`audio/opus`, `video/VP8`, ...).
    pub codecs: Vec<String>,
    /// Whether it is finished (Cues and Duration written) and so seekable.
    pub seekable: bool,
}

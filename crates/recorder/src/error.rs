//! The one error type of the recorder: what went wrong, with the file or input it concerns.

use std::path::PathBuf;

/// Why recording, recovering or reading a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The tracks handed to [`crate::Recorder::start`] cannot be recorded.
    #[error("cannot record these tracks: {0} (expected Opus audio and/or VP8, VP9 or H264 video)")]
    InvalidTracks(String),
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the recorder was doing, e.g. "cannot write".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Matroska/WebM recording this crate can read or repair.
    #[error("{path} is not a recording that can be read: {reason}")]
    Malformed {
        /// The file concerned.
        path: PathBuf,
        /// What was found instead of what was expected.
        reason: String,
    },
    /// Encoding an element failed (a value out of the range Matroska allows).
    #[error("cannot encode a Matroska element: {0}")]
    Encode(#[from] mkv_element::Error),
    /// The recorder thread is gone (it failed earlier, or was finished).
    #[error("the recorder thread has stopped")]
    Stopped,
}

impl RecorderError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RecorderError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        RecorderError::Malformed {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = RecorderError> = std::result::Result<T, E>;

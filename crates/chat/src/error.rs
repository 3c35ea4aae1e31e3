//! Why a join or the chat log failed.

use std::path::PathBuf;

use signaling_proto::ChatErrorCode;

/// Why [`crate::Room::join`] refused someone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The display name is empty or longer than 32 characters once cleaned.
    #[error("the display name must be 1 to 32 characters (control characters removed)")]
    InvalidName,
    /// The id, the name or the origin is banned from this stream.
    #[error("you are banned from this stream")]
    Banned,
}

impl JoinError {
    /// The wire code for the refusal.
    pub fn code(&self) -> ChatErrorCode {
        match self {
            JoinError::InvalidName => ChatErrorCode::InvalidName,
            JoinError::Banned => ChatErrorCode::Banned,
        }
    }
}

/// Why the chat log could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The stream name would not make a safe file name.
    #[error("`{0}` is not a valid stream name ([A-Za-z0-9_-]{{1,64}})")]
    InvalidStreamName(String),
    /// The file system refused.
    #[error("chat log {path}: {source}")]
    Io {
        /// The log file (or its directory).
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("encoding a chat log record: {0}")]
    Encode(#[from] serde_json::Error),
}

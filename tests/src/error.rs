//! The one error type of the test clients: what went wrong talking to a Directo server or a peer.

use signaling_proto::ErrorBody;
use std::time::Duration;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP request itself failed (connection refused, reset, unreadable body).
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an unexpected status. `body` is the parsed JSON error, if any.
    #[error("server answered {status}: {text}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The JSON error body, when the response carried a valid one.
        body: Option<ErrorBody>,
        /// The raw response body, for the failure message.
        text: String,
    },
    /// The WebRTC stack refused an operation.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The other side broke the protocol (missing header, bad SDP, unexpected message).
    #[error("protocol: {0}")]
    Protocol(String),
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        after: Duration,
    },
    /// ffmpeg or ffprobe gave no answer.
    #[error("{0}")]
    MediaTool(#[from] directo_testkit::ffmpeg::MediaToolError),
    /// Media made by ffmpeg could not be read back.
    #[error("cannot read the source media: {0}")]
    Source(#[from] directo_recorder::RecorderError),
    /// Starting or talking to the server process failed.
    #[error("test server: {0}")]
    Server(String),
}

impl ClientError {
    /// The JSON error code, when the server refused with an [`ErrorBody`].
    pub fn code(&self) -> Option<signaling_proto::ErrorCode> {
        match self {
            ClientError::Status {
                body: Some(body), ..
            } => Some(body.code),
            _ => None,
        }
    }

    /// The HTTP status, when the server refused.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn timeout(what: impl Into<String>, after: Duration) -> Self {
        ClientError::Timeout {
            what: what.into(),
            after,
        }
    }
}

/// The result of a client operation.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

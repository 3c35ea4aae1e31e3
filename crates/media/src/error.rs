//! What can go wrong when a client asks the media engine for a session.

use signaling_proto::ErrorCode;

/// An error the media engine returns to the server, which turns it into an HTTP/WS error.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The offer is empty or does not parse.
    #[error("invalid SDP offer: {0}")]
    InvalidSdp(String),
    /// The offer has no codec Directo can forward (or not the publisher's).
    #[error("{0}")]
    UnsupportedCodec(String),
    /// The stream already has a live publisher.
    #[error("stream {0} already has a live publisher")]
    StreamBusy(String),
    /// No such session.
    #[error("no session {0}")]
    SessionNotFound(String),
    /// The engine is shutting down.
    #[error("the media engine is shutting down")]
    Unavailable,
    /// A capacity limit of the server (streams, viewers per stream) is reached.
    #[error("{0}")]
    AtCapacity(String),
    /// The client's address has too many sessions open.
    #[error("{0}")]
    TooManySessions(String),
    /// The WebRTC stack refused something it should not have.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MediaError {
    /// The wire error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            MediaError::InvalidSdp(_) => ErrorCode::InvalidSdp,
            MediaError::UnsupportedCodec(_) => ErrorCode::UnsupportedCodec,
            MediaError::StreamBusy(_) => ErrorCode::StreamBusy,
            MediaError::SessionNotFound(_) => ErrorCode::SessionNotFound,
            MediaError::Unavailable | MediaError::AtCapacity(_) => ErrorCode::Unavailable,
            MediaError::TooManySessions(_) => ErrorCode::RateLimited,
            MediaError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<rtc::shared::error::Error> for MediaError {
    fn from(e: rtc::shared::error::Error) -> Self {
        MediaError::Internal(e.to_string())
    }
}

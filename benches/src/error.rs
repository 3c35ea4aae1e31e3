//! The load generator's error type: what went wrong for one peer or one run.

/// Something that stopped a publisher, a viewer or a run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The WebRTC stack refused an operation.
    #[error("webrtc: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    /// A socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP request failed before an answer came.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered, but not as WHIP/WHEP or the Janus API say it should.
    #[error("{0}")]
    Protocol(String),
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// Result with [`LoadError`].
pub type Result<T> = std::result::Result<T, LoadError>;

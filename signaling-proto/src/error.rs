//! The JSON error body every HTTP endpoint returns, and the codes shared with `/ws`.

use serde::{Deserialize, Serialize};

/// A machine-readable error code. Clients switch on it; the message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (wrong content type, unreadable body, bad JSON).
    BadRequest,
    /// The SDP offer is empty or does not parse.
    InvalidSdp,
    /// The offer has no codec Directo can forward, or not the publisher's codec.
    UnsupportedCodec,
    /// The stream name is outside `[A-Za-z0-9_-]{1,64}`.
    InvalidStreamName,
    /// The display name is outside 1–32 characters.
    InvalidName,
    /// The key or token is missing, wrong, forged or expired.
    Unauthorized,
    /// The token is valid but does not allow this (wrong stream or role).
    Forbidden,
    /// Too many requests or sessions; retry after the `Retry-After` seconds.
    RateLimited,
    /// The request body is over the size limit.
    PayloadTooLarge,
    /// The request body has the wrong content type (WHIP/WHEP take `application/sdp`).
    UnsupportedMediaType,
    /// No such session (it ended, or never existed).
    SessionNotFound,
    /// No such stream.
    StreamNotFound,
    /// The stream already has a live publisher.
    StreamBusy,
    /// The server ended the session (its client fell too far behind on the session's events).
    SessionClosed,
    /// The method is not supported on this resource.
    MethodNotAllowed,
    /// The server is shutting down or over capacity.
    Unavailable,
    /// The node cannot reach the cluster's coordination store (Redis) and the request needs
    /// it; retry after the `Retry-After` seconds.
    ClusterUnavailable,
    /// A restream destination is not valid (URL scheme other than rtmp/rtmps, no host, a
    /// key or name too long or with spaces or control characters).
    InvalidRestream,
    /// The stream has as many restream destinations as it may have.
    TooManyRestreams,
    /// No such restream destination.
    RestreamNotFound,
    /// Something failed inside the server; the request may be retried.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidSdp
            | ErrorCode::UnsupportedCodec
            | ErrorCode::InvalidStreamName
            | ErrorCode::InvalidName
            | ErrorCode::InvalidRestream => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::SessionNotFound
            | ErrorCode::StreamNotFound
            | ErrorCode::RestreamNotFound => 404,
            ErrorCode::SessionClosed => 410,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::StreamBusy | ErrorCode::TooManyRestreams => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Unavailable | ErrorCode::ClusterUnavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// The body of every HTTP error: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A machine-readable code.
    pub code: ErrorCode,
    /// What was wrong with the request and what would be accepted.
    pub message: String,
}

impl ErrorBody {
    /// An error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorBody {}

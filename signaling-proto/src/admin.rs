//! What the admin API answers: the sessions of each live stream (`GET /api/admin/streams`),
//! a stream's audience figures (part of `GET /api/streams/{stream}/stats`) and a minted access
//! token (`POST /api/tokens`).

use serde::{Deserialize, Serialize};

use crate::{Role, StreamInfo};

/// One session of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session id.
    pub session: String,
    /// Whether it publishes or watches.
    pub role: Role,
    /// The display name, if given.
    pub name: Option<String>,
    /// Whether it presented moderator credentials.
    pub moderator: bool,
    /// Whether ICE and DTLS are up.
    pub connected: bool,
    /// Seconds since the session was created.
    pub seconds: f64,
}

/// One live stream and its sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSessions {
    /// The stream.
    pub stream: StreamInfo,
    /// Its publisher's and viewers' sessions.
    pub sessions: Vec<SessionInfo>,
}

/// One stream's audience, kept after the stream ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudienceStats {
    /// Viewers connected now.
    pub viewers: usize,
    /// The most viewers connected at once.
    pub peak_viewers: usize,
    /// Distinct viewers (by name and address) since the server started.
    pub unique_viewers: usize,
    /// Total time watched by all viewers, in seconds.
    pub total_watch_seconds: f64,
    /// Average time watched per unique viewer, in seconds.
    pub average_watch_seconds: f64,
}

/// An access token the admin API minted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintedToken {
    /// The signed token, for `Authorization: Bearer` or a page's `#key=`.
    pub token: String,
    /// When it stops being accepted, seconds since the Unix epoch.
    pub expires_at: u64,
}

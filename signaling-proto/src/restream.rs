//! Restreaming a live stream to RTMP(S) destinations: `POST /api/streams/{stream}/restreams`
//! takes a [`RestreamRequest`]; it and `GET` answer with [`RestreamInfo`] values. A stream
//! key never comes back: `key` is masked (`••••abcd`).

use serde::{Deserialize, Serialize};

/// `POST /api/streams/{stream}/restreams` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestreamRequest {
    /// The ingest URL, `rtmp://` or `rtmps://` (the service's "server URL").
    pub url: String,
    /// The stream key, appended to the URL as its last path segment.
    pub key: String,
    /// A label for people (`YouTube`); the URL's host when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only for this go-live: not kept with the stream's settings, forgotten when it ends.
    #[serde(default)]
    pub once: bool,
}

/// Where a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestreamStatus {
    /// The stream is not live; the destination starts at the next go-live.
    Waiting,
    /// Connecting to the destination.
    Connecting,
    /// Sending.
    Live,
    /// The last attempt failed (`error` says why); trying again after a pause.
    Retrying,
    /// Given up until the next go-live (`error` says why).
    Failed,
}

/// One destination as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestreamInfo {
    /// The destination's id (for `DELETE /api/streams/{stream}/restreams/{id}`).
    pub id: String,
    /// Its label.
    pub name: String,
    /// The ingest URL, without the key.
    pub url: String,
    /// The stream key, masked: `••••` and its last four characters.
    pub key: String,
    /// Whether it is for this go-live only.
    pub once: bool,
    /// Where it is.
    pub status: RestreamStatus,
    /// Bits per second sent over the last seconds (while `live`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_bps: Option<u64>,
    /// Seconds since it went `live`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    /// Why the last attempt failed (`retrying`, `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Connection attempts since the stream went live.
    pub attempts: u32,
}

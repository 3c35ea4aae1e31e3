//! What the API says about a stream: `GET /api/streams` and the `live` event.

use serde::{Deserialize, Serialize};

/// One stream as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// Whether a publisher is sending now.
    pub live: bool,
    /// The publisher's tracks (empty when offline).
    pub tracks: Vec<TrackInfo>,
    /// Viewers connected now.
    pub viewers: usize,
    /// Incoming media bitrate over the last seconds, in bits per second.
    pub bitrate_bps: u64,
    /// Whether the stream is being recorded now.
    #[serde(default)]
    pub recording: bool,
}

/// One published track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// `audio` or `video`.
    pub kind: String,
    /// The codec's MIME type, e.g. `video/VP8`.
    pub codec: String,
    /// Simulcast: the layers' RIDs, smallest picture first (absent without simulcast).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

/// Whether `name` is a valid stream name: `[A-Za-z0-9_-]{1,64}`.
pub fn is_valid_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert!(is_valid_stream_name("launch-2026_A"));
        assert!(!is_valid_stream_name(""));
        assert!(!is_valid_stream_name(&"a".repeat(65)));
        assert!(!is_valid_stream_name("a b"));
        assert!(!is_valid_stream_name("über"));
        assert!(!is_valid_stream_name("../etc"));
    }
}

//! Per-stream settings an admin sets: viewing policy, branding, recording. Kept in
//! `{data-dir}/streams.json` so they survive restarts.

use directo_media::RecordingPolicy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// One stream's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// Whether anyone may watch (otherwise viewers need a token).
    pub public: bool,
    /// The title shown by the player.
    pub title: Option<String>,
    /// A logo URL shown by the player.
    pub logo_url: Option<String>,
    /// The accent colour of the player (`#rrggbb`).
    pub accent_color: Option<String>,
    /// Whether the stream is recorded (`None`: the server default).
    pub record: Option<bool>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            public: true,
            title: None,
            logo_url: None,
            accent_color: None,
            record: None,
        }
    }
}

/// Every stream's settings, shared by the handlers. It owns the recording policy too: the
/// media engine asks it whether a stream is recorded ([`RecordingPolicy`]).
#[derive(Debug, Clone, Default)]
pub struct SettingsStore {
    inner: Arc<RwLock<HashMap<String, StreamSettings>>>,
    path: Option<PathBuf>,
    /// Whether a stream whose settings say nothing is recorded (`--no-record` clears it).
    record_by_default: bool,
}

impl RecordingPolicy for SettingsStore {
    fn records(&self, stream: &str) -> bool {
        self.get(stream).record.unwrap_or(self.record_by_default)
    }
}

impl SettingsStore {
    /// Load the settings kept in `path` (missing or unreadable: start empty); streams whose
    /// settings do not say are recorded if `record_by_default`.
    pub fn load(path: PathBuf, record_by_default: bool) -> Self {
        let map = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        SettingsStore {
            inner: Arc::new(RwLock::new(map)),
            path: Some(path),
            record_by_default,
        }
    }

    /// The settings of `stream` (defaults if never set).
    pub fn get(&self, stream: &str) -> StreamSettings {
        self.inner
            .read()
            .map(|m| m.get(stream).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Replace the settings of `stream` and persist them.
    pub fn set(&self, stream: &str, settings: StreamSettings) -> std::io::Result<()> {
        let snapshot = {
            let mut map = self
                .inner
                .write()
                .map_err(|_| std::io::Error::other("settings lock poisoned"))?;
            map.insert(stream.to_owned(), settings);
            serde_json::to_vec_pretty(&*map).map_err(std::io::Error::other)?
        };
        if let Some(path) = &self.path {
            // Write then rename, so a crash never leaves half a file.
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, snapshot)?;
            std::fs::rename(tmp, path)?;
        }
        Ok(())
    }
}

//! Each stream's restream destinations, kept beside the stream settings in
//! `{data-dir}/restreams.json` (written then renamed, readable by the server's user only) so
//! they start again at the next go-live; one-off destinations live in memory only. Also
//! the checks a new destination passes.

use serde::{Deserialize, Serialize};
use signaling_proto::{ErrorCode, RestreamRequest};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

use crate::error::ApiError;

/// The longest ingest URL accepted.
pub(crate) const MAX_URL_LEN: usize = 512;
/// The longest stream key accepted.
pub(crate) const MAX_KEY_LEN: usize = 256;
/// The longest label accepted.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// One destination, key included (never sent back over the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Destination {
    pub id: String,
    pub name: String,
    pub url: String,
    pub key: String,
    #[serde(default)]
    pub once: bool,
}

impl Destination {
    /// The URL ffmpeg publishes to: the ingest URL with the key as its last segment.
    pub(crate) fn target(&self) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), self.key)
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRestream, message)
}

/// Checks a request and makes it a destination with a new id.
pub(crate) fn check(request: RestreamRequest) -> Result<Destination, ApiError> {
    let RestreamRequest {
        url,
        key,
        name,
        once,
    } = request;
    let url = url.trim().to_owned();
    if url.len() > MAX_URL_LEN {
        return Err(invalid(format!("the URL is over {MAX_URL_LEN} characters")));
    }
    let parsed = url::Url::parse(&url).map_err(|e| {
        invalid(format!(
            "the URL does not parse ({e}); it looks like rtmps://host/app"
        ))
    })?;
    if !matches!(parsed.scheme(), "rtmp" | "rtmps") {
        return Err(invalid(format!(
            "only rtmp:// and rtmps:// URLs can be restreamed to, not {}://",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("put credentials in the stream key, not in the URL"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("the URL has spaces or control characters"));
    }
    let key = key.trim().to_owned();
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(invalid(format!(
            "the stream key is 1 to {MAX_KEY_LEN} characters"
        )));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("the stream key has spaces or control characters"));
    }
    let name = match name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        Some(name) if name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) => {
            return Err(invalid(format!(
                "the name is 1 to {MAX_NAME_LEN} characters without control characters"
            )));
        }
        Some(name) => name,
        None => parsed.host_str().unwrap_or_default().to_owned(),
    };
    Ok(Destination {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        name,
        url,
        key,
        once,
    })
}

/// Every stream's destinations.
#[derive(Debug, Default)]
pub(crate) struct Store {
    path: Option<PathBuf>,
    map: RwLock<HashMap<String, Vec<Destination>>>,
}

impl Store {
    /// The destinations kept in `path` (missing or unreadable: none).
    pub(crate) fn load(path: Option<PathBuf>) -> Self {
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Store {
            path,
            map: RwLock::new(map),
        }
    }

    /// The destinations of `stream`.
    pub(crate) fn list(&self, stream: &str) -> Vec<Destination> {
        self.map
            .read()
            .map(|m| m.get(stream).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Whether `stream` has any destination.
    pub(crate) fn has_any(&self, stream: &str) -> bool {
        self.map
            .read()
            .is_ok_and(|m| m.get(stream).is_some_and(|d| !d.is_empty()))
    }

    /// Adds a destination to `stream` unless it has `limit` already.
    pub(crate) fn add(
        &self,
        stream: &str,
        destination: Destination,
        limit: usize,
    ) -> Result<(), ApiError> {
        let snapshot = {
            let mut map = self.map.write().map_err(|_| poisoned())?;
            let list = map.entry(stream.to_owned()).or_default();
            if list.len() >= limit {
                return Err(ApiError::new(
                    ErrorCode::TooManyRestreams,
                    format!(
                        "stream {stream} has {limit} restream destinations, the most it may have"
                    ),
                ));
            }
            list.push(destination);
            persisted(&map)
        };
        self.save(snapshot)
    }

    /// Removes destination `id` of `stream`; `None` if it has none such.
    pub(crate) fn remove(&self, stream: &str, id: &str) -> Result<Option<Destination>, ApiError> {
        let (removed, snapshot) = {
            let mut map = self.map.write().map_err(|_| poisoned())?;
            let Some(list) = map.get_mut(stream) else {
                return Ok(None);
            };
            let Some(index) = list.iter().position(|d| d.id == id) else {
                return Ok(None);
            };
            let removed = list.remove(index);
            if list.is_empty() {
                map.remove(stream);
            }
            (removed, persisted(&map))
        };
        if !removed.once {
            self.save(snapshot)?;
        }
        Ok(Some(removed))
    }

    /// Forgets the one-off destinations of `stream` (its go-live is over).
    pub(crate) fn forget_once(&self, stream: &str) -> Vec<String> {
        let Ok(mut map) = self.map.write() else {
            return Vec::new();
        };
        let Some(list) = map.get_mut(stream) else {
            return Vec::new();
        };
        let gone = list
            .iter()
            .filter(|d| d.once)
            .map(|d| d.id.clone())
            .collect();
        list.retain(|d| !d.once);
        if list.is_empty() {
            map.remove(stream);
        }
        gone
    }

    fn save(&self, snapshot: Result<Vec<u8>, ApiError>) -> Result<(), ApiError> {
        let snapshot = snapshot?;
        let Some(path) = &self.path else {
            return Ok(());
        };
        let write = || -> std::io::Result<()> {
            let tmp = path.with_extension("json.tmp");
            write_private(&tmp, &snapshot)?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            ApiError::new(
                ErrorCode::Internal,
                format!("cannot keep the restream destinations: {e}"),
            )
        })
    }
}

/// The JSON of every kept (not one-off) destination.
fn persisted(map: &HashMap<String, Vec<Destination>>) -> Result<Vec<u8>, ApiError> {
    let kept: HashMap<&String, Vec<&Destination>> = map
        .iter()
        .map(|(stream, list)| (stream, list.iter().filter(|d| !d.once).collect::<Vec<_>>()))
        .filter(|(_, list)| !list.is_empty())
        .collect();
    serde_json::to_vec_pretty(&kept).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// Writes a file only its owner may read (it holds stream keys).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

fn poisoned() -> ApiError {
    ApiError::new(ErrorCode::Internal, "the restream store lock is poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str, key: &str) -> RestreamRequest {
        RestreamRequest {
            url: url.into(),
            key: key.into(),
            name: None,
            once: false,
        }
    }

    #[test]
    fn only_rtmp_and_rtmps_urls_with_a_host_and_a_clean_key_pass() {
        let ok = check(request(
            "rtmps://live-api-s.facebook.com:443/rtmp/",
            "FB-1-0-abc",
        ))
        .expect("valid");
        assert_eq!(ok.name, "live-api-s.facebook.com");
        assert_eq!(
            ok.target(),
            "rtmps://live-api-s.facebook.com:443/rtmp/FB-1-0-abc"
        );
        for (url, key) in [
            ("https://a.example/live", "k"),
            ("srt://a.example:9000", "k"),
            ("rtmp:///live", "k"),
            ("rtmp://user:pw@a.example/live", "k"),
            ("not a url", "k"),
            ("rtmp://a.example/live", ""),
            ("rtmp://a.example/live", "has space"),
            ("rtmp://a.example/live", "ctl\u{7}"),
        ] {
            let error = check(request(url, key)).expect_err(url);
            assert_eq!(error.0.code, ErrorCode::InvalidRestream, "{url} {key}");
        }
        let long = format!("rtmp://a.example/{}", "x".repeat(MAX_URL_LEN));
        assert!(check(request(&long, "k")).is_err());
        assert!(
            check(request(
                "rtmp://a.example/live",
                &"k".repeat(MAX_KEY_LEN + 1)
            ))
            .is_err()
        );
        let mut named = request("rtmp://a.example/live", "k");
        named.name = Some("n".repeat(MAX_NAME_LEN + 1));
        assert!(check(named).is_err());
    }

    #[test]
    fn destinations_persist_but_one_offs_do_not() {
        let dir = std::env::temp_dir().join(format!("directo-restream-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("restreams.json");
        let store = Store::load(Some(path.clone()));
        let kept = check(request("rtmp://a.example/live", "secret-1")).expect("valid");
        let mut once = check(request("rtmp://b.example/live", "secret-2")).expect("valid");
        once.once = true;
        store.add("show", kept.clone(), 2).expect("added");
        store.add("show", once.clone(), 2).expect("added");
        let third = check(request("rtmp://c.example/live", "k")).expect("valid");
        assert_eq!(
            store
                .add("show", third, 2)
                .expect_err("over the limit")
                .0
                .code,
            ErrorCode::TooManyRestreams
        );
        let reloaded = Store::load(Some(path.clone()));
        assert_eq!(reloaded.list("show"), vec![kept.clone()]);
        assert_eq!(store.forget_once("show"), vec![once.id]);
        assert_eq!(store.remove("show", &kept.id).expect("ok"), Some(kept));
        assert!(!store.has_any("show"));
        assert_eq!(Store::load(Some(path)).list("show"), Vec::new());
        let _ = std::fs::remove_dir_all(dir);
    }
}

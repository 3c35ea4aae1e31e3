//! Viewers over time, per stream, for the stats page: the caller samples every stream's
//! viewer count every few seconds. A stream keeps a day of samples, and after it ends its
//! series is kept within [`crate::retention`]'s bounds.

use directo_media::EngineHandle;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::retention::Retained;

/// How many samples a stream keeps (a day at one every 10 s).
const SERIES_LEN: usize = 8640;

/// (unix seconds, viewers) samples, oldest first.
type Series = VecDeque<(u64, usize)>;

/// Viewer counts sampled over time per stream.
#[derive(Clone, Default)]
pub struct ViewerSeries {
    inner: Arc<Mutex<Retained<Series>>>,
}

impl ViewerSeries {
    /// The samples of `stream`, oldest first.
    pub(crate) fn get(&self, stream: &str) -> Vec<(u64, usize)> {
        self.inner
            .lock()
            .ok()
            .and_then(|m| m.get(stream).map(|q| q.iter().copied().collect()))
            .unwrap_or_default()
    }

    /// Record the viewer count of every stream now; run every few seconds.
    pub fn sample(&self, engine: &EngineHandle) {
        let streams = engine.streams();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let Ok(mut map) = self.inner.lock() else {
            return;
        };
        for info in streams.iter() {
            let series = map.active(&info.name);
            series.push_back((unix, info.viewers));
            if series.len() > SERIES_LEN {
                series.pop_front();
            }
        }
        // The snapshot is sorted by name.
        let in_use = |name: &str| {
            streams
                .binary_search_by(|s| s.name.as_str().cmp(name))
                .is_ok()
        };
        map.end_unless(in_use, Instant::now());
    }
}

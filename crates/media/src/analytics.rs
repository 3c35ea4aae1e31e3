//! Audience figures per stream, kept after the stream ends: peak concurrent viewers, unique
//! viewers, watch time. A viewer is counted once per name and address (or per session when it
//! gave neither), and watches from the moment its connection is up until it leaves.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// What the admin API and the stats page show about one stream's audience.
pub use signaling_proto::AudienceStats;

#[derive(Debug, Default)]
struct Audience {
    watching: HashMap<u64, Instant>,
    peak: usize,
    unique: HashSet<String>,
    watched: Duration,
}

/// Every stream's audience.
#[derive(Debug, Default)]
pub(crate) struct Analytics {
    streams: HashMap<String, Audience>,
}

impl Analytics {
    /// A viewer's connection came up.
    pub(crate) fn viewer_connected(&mut self, stream: &str, peer: u64, who: String, now: Instant) {
        let audience = self.streams.entry(stream.to_owned()).or_default();
        audience.watching.insert(peer, now);
        audience.peak = audience.peak.max(audience.watching.len());
        audience.unique.insert(who);
    }

    /// A viewer left (or was dropped).
    pub(crate) fn viewer_left(&mut self, stream: &str, peer: u64, now: Instant) {
        if let Some(audience) = self.streams.get_mut(stream)
            && let Some(since) = audience.watching.remove(&peer)
        {
            audience.watched += now.saturating_duration_since(since);
        }
    }

    /// The figures of `stream` as of `now`.
    pub(crate) fn stats(&self, stream: &str, now: Instant) -> Option<AudienceStats> {
        let audience = self.streams.get(stream)?;
        let ongoing: Duration = audience
            .watching
            .values()
            .map(|since| now.saturating_duration_since(*since))
            .sum();
        let total = (audience.watched + ongoing).as_secs_f64();
        let unique = audience.unique.len();
        Some(AudienceStats {
            viewers: audience.watching.len(),
            peak_viewers: audience.peak,
            unique_viewers: unique,
            total_watch_seconds: total,
            average_watch_seconds: if unique == 0 {
                0.0
            } else {
                total / unique as f64
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_unique_and_watch_time() {
        let mut a = Analytics::default();
        let t0 = Instant::now();
        a.viewer_connected("s", 1, "ana@1".into(), t0);
        a.viewer_connected("s", 2, "bo@2".into(), t0);
        a.viewer_left("s", 1, t0 + Duration::from_secs(10));
        // Ana comes back: still one unique viewer.
        a.viewer_connected("s", 3, "ana@1".into(), t0 + Duration::from_secs(20));
        let stats = a.stats("s", t0 + Duration::from_secs(30)).unwrap();
        assert_eq!(stats.viewers, 2);
        assert_eq!(stats.peak_viewers, 2);
        assert_eq!(stats.unique_viewers, 2);
        // 10 s (ana) + 30 s (bo) + 10 s (ana again).
        assert!((stats.total_watch_seconds - 50.0).abs() < 1e-6);
        assert!((stats.average_watch_seconds - 25.0).abs() < 1e-6);
        assert!(a.stats("other", t0).is_none());
    }
}

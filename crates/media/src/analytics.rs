//! Audience figures per stream, kept after the stream ends: peak concurrent viewers, unique
//! viewers, watch time. A viewer is counted once per name and address (or per session when it
//! gave neither), and watches from the moment its connection is up until it leaves.
//!
//! A stream's audience has ended when its last viewer left. Ended audiences are kept for
//! [`KEEP_ENDED`], at most [`MAX_ENDED`] of them (the most recently ended), so a server that
//! sees a new stream name every minute for months does not keep every one; a stream watched
//! again before it is forgotten continues its figures.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long an ended stream's audience is kept.
pub(crate) const KEEP_ENDED: Duration = Duration::from_secs(24 * 3600);
/// How many ended streams' audiences are kept at most.
pub(crate) const MAX_ENDED: usize = 256;

/// What the admin API and the stats page show about one stream's audience.
pub use signaling_proto::AudienceStats;

#[derive(Debug, Default)]
struct Audience {
    watching: HashMap<u64, Instant>,
    peak: usize,
    unique: HashSet<String>,
    watched: Duration,
    /// When the last viewer left (`None` while someone watches).
    ended: Option<Instant>,
}

/// Every stream's audience.
#[derive(Debug, Default)]
pub(crate) struct Analytics {
    streams: HashMap<String, Audience>,
}

impl Analytics {
    /// A viewer's connection came up.
    pub(crate) fn viewer_connected(&mut self, stream: &str, peer: u64, who: String, now: Instant) {
        if !self.streams.contains_key(stream) {
            // A new audience is one more to keep: look at the bounds now (and when one ends).
            self.forget_ended(now);
        }
        let audience = self.streams.entry(stream.to_owned()).or_default();
        audience.watching.insert(peer, now);
        audience.peak = audience.peak.max(audience.watching.len());
        audience.unique.insert(who);
        audience.ended = None;
    }

    /// A viewer left (or was dropped).
    pub(crate) fn viewer_left(&mut self, stream: &str, peer: u64, now: Instant) {
        if let Some(audience) = self.streams.get_mut(stream)
            && let Some(since) = audience.watching.remove(&peer)
        {
            audience.watched += now.saturating_duration_since(since);
            if audience.watching.is_empty() {
                audience.ended = Some(now);
                self.forget_ended(now);
            }
        }
    }

    /// Forget ended audiences beyond the bounds.
    fn forget_ended(&mut self, now: Instant) {
        self.streams.retain(|_, a| {
            a.ended
                .is_none_or(|at| now.saturating_duration_since(at) < KEEP_ENDED)
        });
        let mut ended: Vec<(Instant, String)> = self
            .streams
            .iter()
            .filter_map(|(name, a)| a.ended.map(|at| (at, name.clone())))
            .collect();
        if ended.len() > MAX_ENDED {
            ended.sort();
            let surplus = ended.len() - MAX_ENDED;
            for (_, name) in ended.into_iter().take(surplus) {
                self.streams.remove(&name);
            }
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

    #[test]
    fn ended_audiences_are_kept_within_bounds() {
        let mut a = Analytics::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENDED as u64 + 5 {
            let at = t0 + Duration::from_secs(i);
            a.viewer_connected(&format!("s{i}"), i, format!("v@{i}"), at);
            a.viewer_left(&format!("s{i}"), i, at + Duration::from_secs(1));
        }
        assert!(
            a.stats("s0", t0).is_none(),
            "the oldest ended are forgotten"
        );
        assert_eq!(a.stats("s10", t0).unwrap().unique_viewers, 1);
        assert_eq!(a.streams.len(), MAX_ENDED);

        // Someone still watching keeps a stream's figures however long ago others left.
        let later = t0 + KEEP_ENDED * 2;
        a.viewer_connected("live", 1, "ana@1".into(), later);
        a.viewer_connected("live", 2, "bo@2".into(), later);
        a.viewer_left("live", 1, later);
        assert_eq!(a.streams.len(), 1, "a day later only the live one is left");
        assert_eq!(a.stats("live", later).unwrap().unique_viewers, 2);
    }
}

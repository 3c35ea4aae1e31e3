//! Figures that outlive their stream (viewers over time, chat counts), kept for a bounded
//! time once the stream has ended: at most [`MAX_ENDED`] ended streams, none that ended more
//! than [`KEEP_ENDED`] ago. A server that sees a new stream name every minute for months
//! holds a day's worth of ended streams, not every name it ever saw; a stream used again
//! before it is forgotten continues its figures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an ended stream's figures are kept.
pub(crate) const KEEP_ENDED: Duration = Duration::from_secs(24 * 3600);
/// How many ended streams' figures are kept at most (the most recently ended ones).
pub(crate) const MAX_ENDED: usize = 256;

/// Per-stream figures, with when each stream ended (`None`: in use).
#[derive(Debug)]
pub(crate) struct Retained<T> {
    entries: HashMap<String, (T, Option<Instant>)>,
}

impl<T> Default for Retained<T> {
    fn default() -> Self {
        Retained {
            entries: HashMap::new(),
        }
    }
}

impl<T: Default> Retained<T> {
    /// The figures of a stream in use, created if it has none; a stream that had ended is in
    /// use again.
    pub(crate) fn active(&mut self, stream: &str) -> &mut T {
        let entry = self
            .entries
            .entry(stream.to_owned())
            .or_insert_with(|| (T::default(), None));
        entry.1 = None;
        &mut entry.0
    }

    /// The figures of `stream`, if it has any.
    pub(crate) fn get(&self, stream: &str) -> Option<&T> {
        self.entries.get(stream).map(|(value, _)| value)
    }

    /// `stream` ended at `now`: its figures are kept within the bounds, then forgotten.
    /// Returns them, for a last change (e.g. to drop what only a live stream needs).
    pub(crate) fn end(&mut self, stream: &str, now: Instant) -> Option<&mut T> {
        let (_, ended) = self.entries.get_mut(stream)?;
        ended.get_or_insert(now);
        self.prune(now);
        self.entries.get_mut(stream).map(|(value, _)| value)
    }

    /// Every stream in use for which `in_use` says no has ended at `now`.
    pub(crate) fn end_unless(&mut self, in_use: impl Fn(&str) -> bool, now: Instant) {
        for (stream, (_, ended)) in &mut self.entries {
            if ended.is_none() && !in_use(stream) {
                *ended = Some(now);
            }
        }
        self.prune(now);
    }

    /// How many streams have figures (in use or ended).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forget ended streams beyond the bounds.
    fn prune(&mut self, now: Instant) {
        self.entries.retain(|_, (_, ended)| {
            ended.is_none_or(|at| now.saturating_duration_since(at) < KEEP_ENDED)
        });
        let mut ended: Vec<(Instant, String)> = self
            .entries
            .iter()
            .filter_map(|(stream, (_, at))| at.map(|at| (at, stream.clone())))
            .collect();
        if ended.len() <= MAX_ENDED {
            return;
        }
        ended.sort();
        let surplus = ended.len() - MAX_ENDED;
        for (_, stream) in ended.into_iter().take(surplus) {
            self.entries.remove(&stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_streams_are_kept_within_bounds() {
        let t0 = Instant::now();
        let mut figures: Retained<u32> = Retained::default();
        for i in 0..MAX_ENDED + 10 {
            *figures.active(&format!("s{i}")) += 1;
            figures.end(&format!("s{i}"), t0 + Duration::from_secs(i as u64));
        }
        assert_eq!(figures.len(), MAX_ENDED);
        assert!(figures.get("s0").is_none(), "the oldest ended go first");
        assert!(figures.get(&format!("s{}", MAX_ENDED + 9)).is_some());

        // A stream in use is never forgotten; used again, an ended one is kept again.
        *figures.active("live") += 1;
        *figures.active("s20") += 1;
        assert_eq!(figures.get("s20"), Some(&2));
        figures.end_unless(|s| s == "live" || s == "s20", t0 + KEEP_ENDED * 2);
        assert_eq!(figures.len(), 2);
        assert_eq!(figures.get("live"), Some(&1));
    }
}

//! Remembers which frames were delivered, so a frame seen again is dropped.
//!
//! A replayed frame verifies (it was signed with the secret), so the tag check alone would
//! deliver it again; the timestamp bounds how long a replay could work, and this guard
//! closes that window. A frame is remembered for twice the maximum message age after it
//! arrived: by then its timestamp is past the age limit, and the stale check drops it.
//! Time is passed in.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The tags of recently delivered frames.
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    keep: Duration,
    seen: HashSet<[u8; 32]>,
    /// Arrival order, for forgetting the oldest first.
    arrivals: VecDeque<(Instant, [u8; 32])>,
}

impl ReplayGuard {
    /// A guard for frames at most `max_age` old.
    pub(crate) fn new(max_age: Duration) -> Self {
        Self {
            keep: max_age * 2,
            seen: HashSet::new(),
            arrivals: VecDeque::new(),
        }
    }

    /// Whether the frame with `tag` arrives for the first time (and remembers it).
    pub(crate) fn first_time(&mut self, tag: [u8; 32], now: Instant) -> bool {
        while let Some(&(arrived, old)) = self.arrivals.front() {
            if now.saturating_duration_since(arrived) < self.keep {
                break;
            }
            self.arrivals.pop_front();
            self.seen.remove(&old);
        }
        if !self.seen.insert(tag) {
            return false;
        }
        self.arrivals.push_back((now, tag));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_passes_once_and_is_forgotten_after_the_window() {
        let start = Instant::now();
        let mut guard = ReplayGuard::new(Duration::from_secs(30));
        assert!(guard.first_time([1; 32], start));
        assert!(guard.first_time([2; 32], start));
        assert!(!guard.first_time([1; 32], start + Duration::from_secs(59)));
        assert!(guard.first_time([1; 32], start + Duration::from_secs(61)));
        assert_eq!(guard.seen.len(), 1, "the old tags are forgotten");
    }
}

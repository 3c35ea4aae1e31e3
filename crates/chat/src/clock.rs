//! Wall-clock timestamps from the caller's monotonic time.
//!
//! The room is told the time as an [`Instant`] on every call (so tests control it and a
//! wall-clock jump cannot shorten or stretch a slow-mode wait), but message timestamps and
//! mute ends must be wall-clock values that survive a restart. One pair of readings taken
//! when the room is created maps one to the other.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Maps `Instant`s to milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    base: Instant,
    base_ms: u64,
}

impl WallClock {
    /// `now` and `wall` read at the same moment.
    pub(crate) fn new(now: Instant, wall: SystemTime) -> Self {
        let base_ms = wall.duration_since(UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        WallClock { base: now, base_ms }
    }

    /// `now` in milliseconds since the Unix epoch (times before the base read as the base).
    pub(crate) fn millis(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.base).as_millis();
        self.base_ms
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn follows_the_monotonic_clock_from_the_base() {
        let now = Instant::now();
        let clock = WallClock::new(now, UNIX_EPOCH + Duration::from_millis(5_000));
        assert_eq!(clock.millis(now), 5_000);
        assert_eq!(clock.millis(now + Duration::from_millis(1_500)), 6_500);
    }
}

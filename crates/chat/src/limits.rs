//! One member's sending limits: the flood limit (at most 5 messages per 10 s) and slow
//! mode (one message per N seconds). Enforced on what arrives, so a client that ignores
//! them gains nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Messages one user may send within [`RATE_LIMIT_WINDOW`].
pub const RATE_LIMIT_MESSAGES: usize = 5;
/// The window of the flood limit.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(10);
/// How long a viewer who goes over the flood limit is muted.
pub const AUTO_MUTE: Duration = Duration::from_secs(60);

/// When one member's accepted messages were sent.
#[derive(Debug, Default)]
pub(crate) struct SendLimiter {
    /// The accepted messages within the last window, oldest first.
    recent: VecDeque<Instant>,
}

impl SendLimiter {
    /// How long the member must still wait under slow mode of `interval`, if at all.
    pub(crate) fn slow_mode_wait(&self, interval: Duration, now: Instant) -> Option<Duration> {
        let last = *self.recent.back()?;
        let free_at = last + interval;
        (now < free_at).then(|| free_at - now)
    }

    /// Whether one more message at `now` stays within the flood limit.
    pub(crate) fn allows(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= RATE_LIMIT_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.len() < RATE_LIMIT_MESSAGES
    }

    /// Notes an accepted message.
    pub(crate) fn record(&mut self, now: Instant) {
        self.recent.push_back(now);
        // Slow mode only needs the last one; the flood limit the last few.
        while self.recent.len() > RATE_LIMIT_MESSAGES {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_window_then_free_again() {
        let t0 = Instant::now();
        let mut limiter = SendLimiter::default();
        for i in 0..5 {
            let at = t0 + Duration::from_secs(i);
            assert!(limiter.allows(at));
            limiter.record(at);
        }
        assert!(!limiter.allows(t0 + Duration::from_secs(9)));
        assert!(limiter.allows(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn slow_mode_counts_from_the_last_message() {
        let t0 = Instant::now();
        let mut limiter = SendLimiter::default();
        assert_eq!(limiter.slow_mode_wait(Duration::from_secs(5), t0), None);
        limiter.record(t0);
        assert_eq!(
            limiter.slow_mode_wait(Duration::from_secs(5), t0 + Duration::from_secs(2)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            limiter.slow_mode_wait(Duration::from_secs(5), t0 + Duration::from_secs(5)),
            None
        );
    }
}

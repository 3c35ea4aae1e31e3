//! Counters of one stream and the incoming-bitrate estimate: what `/metrics` and the admin
//! API show about a stream. Owns no policy; the stream bumps the counters.

use std::time::{Duration, Instant};

/// A snapshot of one stream's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// RTP packets received from the publisher (padding included).
    pub packets_in: u64,
    /// Bytes of RTP received from the publisher (header and payload).
    pub bytes_in: u64,
    /// RTP packets handed out to viewers, retransmissions included.
    pub packets_out: u64,
    /// Padding-only packets dropped instead of forwarded.
    pub padding_dropped: u64,
    /// Publisher packets dropped because they were received before (or are too old to tell).
    pub duplicates_dropped: u64,
    /// Retransmissions sent in answer to viewers' NACKs (over RTX).
    pub nacks_answered: u64,
    /// Packets NACKed by viewers without RTX, which are never sent a packet twice.
    pub nacks_unanswered: u64,
    /// Keyframe requests (PLI/FIR) sent to the publisher.
    pub keyframe_requests_sent: u64,
    /// Incoming bitrate in bits per second over the last ~2 seconds.
    pub incoming_bitrate_bps: u64,
}

/// Width of one bucket of the sliding window.
const BUCKET: Duration = Duration::from_millis(100);
/// Number of buckets: 20 × 100 ms = a 2 s window.
const BUCKETS: usize = 20;

/// Bytes received over a sliding window of ~2 s, in 100 ms buckets.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    origin: Option<Instant>,
    /// `(bucket index since origin, bytes)` per ring slot.
    buckets: [(u64, u64); BUCKETS],
}

impl RateWindow {
    fn index(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        (now.saturating_duration_since(origin).as_millis() / BUCKET.as_millis()) as u64
    }

    /// Counts `bytes` received at `now`.
    pub(crate) fn add(&mut self, now: Instant, bytes: u64) {
        let index = self.index(now);
        let slot = &mut self.buckets[(index % BUCKETS as u64) as usize];
        if slot.0 != index {
            *slot = (index, 0);
        }
        slot.1 += bytes;
    }

    /// Bits per second over the window ending at `now`.
    pub(crate) fn bitrate_bps(&self, now: Instant) -> u64 {
        let Some(origin) = self.origin else {
            return 0;
        };
        let current =
            (now.saturating_duration_since(origin).as_millis() / BUCKET.as_millis()) as u64;
        let bytes: u64 = self
            .buckets
            .iter()
            .filter(|(index, _)| *index <= current && current - *index < BUCKETS as u64)
            .map(|(_, bytes)| bytes)
            .sum();
        let window_secs = (BUCKET * BUCKETS as u32).as_secs_f64();
        (bytes as f64 * 8.0 / window_secs) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock;

    #[test]
    fn sliding_window_forgets_old_bytes() {
        let t0 = test_clock::start();
        let mut window = RateWindow::default();
        // 1000 bytes every 10 ms for 2 s = 100 kB/s = 800 kbit/s.
        for i in 0..200 {
            window.add(t0 + Duration::from_millis(i * 10), 1000);
        }
        let end = t0 + Duration::from_millis(1999);
        assert_eq!(window.bitrate_bps(end), 800_000);
        assert_eq!(window.bitrate_bps(end + Duration::from_secs(3)), 0);
    }

    #[test]
    fn empty_window_is_zero() {
        assert_eq!(RateWindow::default().bitrate_bps(test_clock::start()), 0);
    }
}

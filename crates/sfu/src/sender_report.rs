//! The publisher's clock mapping for one track, taken from its RTCP sender reports, and the
//! arithmetic that turns it into a sender report for one viewer.
//!
//! Viewers need SRs to sync audio with video (lip sync); since each viewer's timestamps are
//! shifted by its own munger offset, each gets its own SR: the publisher's NTP↔RTP pair
//! extrapolated to the send time, then shifted by that viewer's offset.

use std::time::{Duration, Instant};

/// How often each connected down track gets a sender report.
pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The last NTP↔RTP mapping a publisher reported for one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClockMapping {
    /// NTP time (32.32 fixed point) of the report.
    pub(crate) ntp_time: u64,
    /// RTP timestamp, in the publisher's numbering, at that same instant.
    pub(crate) rtp_time: u32,
    /// When the report arrived here.
    pub(crate) received_at: Instant,
}

impl ClockMapping {
    /// The mapping moved forward to `now`: `(ntp_time, rtp_time)` in the publisher's
    /// numbering.
    pub(crate) fn extrapolate(&self, now: Instant, clock_rate: u32) -> (u64, u32) {
        let elapsed = now.saturating_duration_since(self.received_at);
        let ntp = self.ntp_time.wrapping_add(ntp_duration(elapsed));
        let ticks = (elapsed.as_secs_f64() * f64::from(clock_rate)).round() as u64;
        (ntp, self.rtp_time.wrapping_add(ticks as u32))
    }
}

/// A duration in NTP's 32.32 fixed-point seconds.
fn ntp_duration(duration: Duration) -> u64 {
    let fraction = (u64::from(duration.subsec_nanos()) << 32) / 1_000_000_000;
    (duration.as_secs() << 32).wrapping_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock;

    #[test]
    fn extrapolates_both_clocks() {
        let t0 = test_clock::start();
        let mapping = ClockMapping {
            ntp_time: 10 << 32,
            rtp_time: 1000,
            received_at: t0,
        };
        let (ntp, rtp) = mapping.extrapolate(t0 + Duration::from_millis(1500), 90_000);
        assert_eq!(ntp, (11 << 32) + (1 << 31));
        assert_eq!(rtp, 1000 + 135_000);
        assert_eq!(mapping.extrapolate(t0, 48_000), (10 << 32, 1000));
    }
}

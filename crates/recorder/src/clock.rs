//! One timeline for every track: maps a track's RTP timestamps to nanoseconds on the
//! recorder's clock (the `Instant`s passed in, counted from the recording's origin).
//!
//! Before the publisher's first RTCP sender report a track is anchored on arrival times: the
//! packet that arrived with the least delay relative to its RTP timestamp (over the track's
//! first seconds) stands for "captured when it arrived". Once a track has a sender report,
//! its RTP time maps through the report's NTP time, and NTP time maps to the recorder's
//! clock through one offset shared by every track, estimated from the least-delayed reports.
//! Sharing that offset is what keeps audio and video in sync: both tracks are placed on the
//! publisher's capture clock, whatever their RTP bases and whenever each of them started.
//! Owns RTP timestamp unwrapping (wraparound) too; it does not own packets or frames.

use std::time::{Duration, Instant};

/// How long the arrival anchor and the NTP offset keep improving before they are frozen.
/// Freezing stops the estimate from following clock drift, which would bend the timeline.
const ESTIMATE_WINDOW: Duration = Duration::from_secs(3);

/// Nanoseconds relative to the recording's origin instant (negative before it).
pub(crate) type Nanos = i64;

/// Converts `instant` to nanoseconds since `origin` (negative if earlier).
pub(crate) fn nanos_since(origin: Instant, instant: Instant) -> Nanos {
    match instant.checked_duration_since(origin) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => -i64::try_from((origin - instant).as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Converts a 64-bit NTP timestamp (32.32 fixed point seconds) to nanoseconds.
pub(crate) fn ntp_to_nanos(ntp: u64) -> i64 {
    let seconds = (ntp >> 32) as i64;
    let fraction = ((ntp & 0xFFFF_FFFF) * 1_000_000_000) >> 32;
    seconds * 1_000_000_000 + fraction as i64
}

/// Extends 32-bit RTP timestamps to 64 bits across wraparound.
#[derive(Debug, Default, Clone)]
pub(crate) struct RtpUnwrapper {
    highest: Option<i64>,
}

impl RtpUnwrapper {
    /// The extended value of `ts`, taken as the nearest one to the highest seen so far.
    pub(crate) fn unwrap(&mut self, ts: u32) -> i64 {
        let extended = self.peek(ts);
        self.highest = Some(self.highest.map_or(extended, |h| h.max(extended)));
        extended
    }

    /// Like [`Self::unwrap`], without moving the reference point.
    pub(crate) fn peek(&self, ts: u32) -> i64 {
        match self.highest {
            None => i64::from(ts),
            Some(highest) => highest + i64::from(ts.wrapping_sub(highest as u32) as i32),
        }
    }
}

/// The NTP-to-recorder-clock offset shared by the tracks of one publisher.
#[derive(Debug, Default, Clone)]
pub(crate) struct NtpOffset {
    /// `arrival - ntp` of the least-delayed sender report, and when the estimate started.
    best: Option<(i64, Nanos)>,
}

impl NtpOffset {
    /// Offers a sender report that arrived at `arrival`.
    pub(crate) fn observe(&mut self, ntp_nanos: i64, arrival: Nanos) {
        let candidate = arrival - ntp_nanos;
        match &mut self.best {
            None => self.best = Some((candidate, arrival)),
            Some((best, since)) => {
                if arrival - *since <= ESTIMATE_WINDOW.as_nanos() as i64 && candidate < *best {
                    *best = candidate;
                }
            }
        }
    }

    /// Recorder-clock nanoseconds for an NTP time, once a report has been seen.
    pub(crate) fn to_local(&self, ntp_nanos: i64) -> Option<Nanos> {
        self.best.map(|(offset, _)| ntp_nanos + offset)
    }
}

/// Maps one track's RTP timestamps onto the recorder's clock.
#[derive(Debug, Clone)]
pub(crate) struct TrackClock {
    rate: i64,
    unwrapper: RtpUnwrapper,
    /// `(extended rtp, arrival)` of the least-delayed packet, and when anchoring began.
    anchor: Option<(i64, Nanos, Nanos)>,
    /// The latest sender report: `(extended rtp, ntp nanos)`.
    report: Option<(i64, i64)>,
}

impl TrackClock {
    /// A clock for a track whose RTP clock ticks `rate` times a second.
    pub(crate) fn new(rate: u32) -> Self {
        TrackClock {
            rate: i64::from(rate.max(1)),
            unwrapper: RtpUnwrapper::default(),
            anchor: None,
            report: None,
        }
    }

    fn ticks_to_nanos(&self, ticks: i64) -> i64 {
        (i128::from(ticks) * 1_000_000_000 / i128::from(self.rate)) as i64
    }

    /// Notes a packet's arrival: refines the arrival anchor; returns the extended timestamp.
    pub(crate) fn on_packet(&mut self, ts: u32, arrival: Nanos) -> i64 {
        let extended = self.unwrapper.unwrap(ts);
        let base = arrival - self.ticks_to_nanos(extended);
        self.anchor = match self.anchor {
            None => Some((extended, arrival, arrival)),
            Some((rtp, at, since)) => {
                let current = at - self.ticks_to_nanos(rtp);
                if base < current && arrival - since <= ESTIMATE_WINDOW.as_nanos() as i64 {
                    Some((extended, arrival, since))
                } else {
                    Some((rtp, at, since))
                }
            }
        };
        extended
    }

    /// Notes a sender report for this track.
    pub(crate) fn on_sender_report(&mut self, rtp: u32, ntp_nanos: i64) {
        let extended = if self.anchor.is_some() {
            self.unwrapper.peek(rtp)
        } else {
            self.unwrapper.unwrap(rtp)
        };
        self.report = Some((extended, ntp_nanos));
    }

    /// The extended form of a timestamp near those already seen.
    pub(crate) fn extend(&self, ts: u32) -> i64 {
        self.unwrapper.peek(ts)
    }

    /// Recorder-clock time of extended RTP time `rtp`, or `None` before any packet or report.
    pub(crate) fn to_local(&self, rtp: i64, offset: &NtpOffset) -> Option<Nanos> {
        if let Some((report_rtp, report_ntp)) = self.report
            && let Some(local) = offset.to_local(report_ntp + self.ticks_to_nanos(rtp - report_rtp))
        {
            return Some(local);
        }
        let (anchor_rtp, anchor_at, _) = self.anchor?;
        Some(anchor_at + self.ticks_to_nanos(rtp - anchor_rtp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrapper_crosses_wraparound_both_ways() {
        let mut u = RtpUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), i64::from(u32::MAX - 10));
        assert_eq!(u.unwrap(5), i64::from(u32::MAX) + 6);
        assert_eq!(u.unwrap(u32::MAX - 20), i64::from(u32::MAX - 20));
        assert_eq!(u.unwrap(100), i64::from(u32::MAX) + 101);
    }

    #[test]
    fn sender_reports_put_tracks_on_one_clock() {
        let mut offset = NtpOffset::default();
        let ntp0: u64 = 3_900_000_000 << 32;
        offset.observe(ntp_to_nanos(ntp0), 1_000_000_000);
        let mut audio = TrackClock::new(48_000);
        let mut video = TrackClock::new(90_000);
        audio.on_sender_report(1_000, ntp_to_nanos(ntp0));
        video.on_sender_report(4_000_000_000, ntp_to_nanos(ntp0));
        audio.on_packet(1_000 + 48_000, 3_000_000_000);
        video.on_packet(4_000_000_000u32.wrapping_add(90_000), 2_500_000_000);
        let a = audio.to_local(audio.extend(1_000 + 48_000), &offset);
        let v = video.to_local(video.extend(4_000_000_000u32.wrapping_add(90_000)), &offset);
        assert_eq!(a, Some(2_000_000_000));
        assert_eq!(a, v);
    }

    #[test]
    fn arrival_anchor_prefers_least_delayed_packet() {
        let mut clock = TrackClock::new(90_000);
        clock.on_packet(0, 30_000_000);
        clock.on_packet(9_000, 100_000_000);
        assert_eq!(clock.to_local(0, &NtpOffset::default()), Some(0));
    }
}

//! One track's clock: what its packets and sender reports say about when its RTP times were
//! captured, and the one offset that places the track on the recorder's timeline (the
//! `Instant`s passed in, counted from the recording's origin).
//!
//! A track is placed by a single offset — the recorder-clock time of its RTP time zero —
//! so every frame of it keeps the spacing of its RTP timestamps exactly. The offset is first
//! set provisionally from arrivals (the least-delayed packet stands for "captured when it
//! arrived"), and set once more, for good, from the sender reports (see `sync`). Owns RTP
//! timestamp unwrapping (wraparound) too; does not own packets, frames or the decision of
//! when the offset is final.

use std::collections::VecDeque;
use std::time::Instant;

use crate::sender_reports::{ReportEstimate, ReportFit};

/// Nanoseconds relative to the recording's origin instant (negative before it).
pub(crate) type Nanos = i64;

/// Distinct RTP timestamps remembered with their arrival, to recognise a report that names
/// a packet already received; a few frames' worth.
const RECENT_TIMESTAMPS: usize = 16;
/// A report naming a packet that arrived longer ago than this is not used (see
/// [`TrackClock::on_sender_report`]).
const MAX_REPORT_STALENESS: Nanos = 100_000_000;

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

/// Nanoseconds that `ticks` of a `rate` Hz RTP clock last.
pub(crate) fn ticks_to_nanos(ticks: i64, rate: i64) -> i64 {
    (i128::from(ticks) * 1_000_000_000 / i128::from(rate)) as i64
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

/// Where a track sits on the recorder's timeline: the recorder-clock time of its RTP zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Nothing of the track has been written yet.
    Unplaced,
    /// Placed by arrivals; the sender reports may still move the whole track once.
    Provisional(Nanos),
    /// Placed for good.
    Final(Nanos),
}

/// Maps one track's RTP timestamps onto the recorder's clock.
#[derive(Debug, Clone)]
pub(crate) struct TrackClock {
    rate: i64,
    unwrapper: RtpUnwrapper,
    /// When the first packet arrived.
    first_arrival: Option<Nanos>,
    /// Recorder-clock time of RTP zero by the least-delayed packet so far.
    arrival_zero: Option<Nanos>,
    /// The newest distinct timestamps, extended, with their first packet's arrival.
    recent: VecDeque<(i64, Nanos)>,
    reports: ReportFit,
    placement: Placement,
}

impl TrackClock {
    /// A clock for a track whose RTP clock ticks `rate` times a second.
    pub(crate) fn new(rate: u32) -> Self {
        let rate = i64::from(rate.max(1));
        TrackClock {
            rate,
            unwrapper: RtpUnwrapper::default(),
            first_arrival: None,
            arrival_zero: None,
            recent: VecDeque::with_capacity(RECENT_TIMESTAMPS),
            reports: ReportFit::new(rate),
            placement: Placement::Unplaced,
        }
    }

    fn ticks_to_nanos(&self, ticks: i64) -> i64 {
        ticks_to_nanos(ticks, self.rate)
    }

    /// Notes a packet's arrival; returns its extended timestamp.
    pub(crate) fn on_packet(&mut self, ts: u32, arrival: Nanos) -> i64 {
        let extended = self.unwrapper.unwrap(ts);
        self.first_arrival.get_or_insert(arrival);
        let zero = arrival - self.ticks_to_nanos(extended);
        self.arrival_zero = Some(self.arrival_zero.map_or(zero, |best| best.min(zero)));
        if !self.recent.iter().any(|&(rtp, _)| rtp == extended) {
            if self.recent.len() == RECENT_TIMESTAMPS {
                self.recent.pop_front();
            }
            self.recent.push_back((extended, arrival));
        }
        extended
    }

    /// Notes a sender report for this track: NTP time `ntp_nanos` is RTP time `rtp`; it
    /// arrived at `arrival`.
    ///
    /// A report whose RTP time is exactly that of a packet already received comes from a
    /// sender that reuses its last packet's RTP time instead of the time of the report
    /// (aiortc and others). Its NTP time is then either when that packet was sent (aiortc
    /// stamps that) or when the report was (others do): the two lie one arrival interval
    /// apart, and the report is moved back by half of it, which is never more than half
    /// that interval from either. A report naming a packet older than
    /// [`MAX_REPORT_STALENESS`] is not used: half of that would be a real error.
    pub(crate) fn on_sender_report(&mut self, rtp: u32, ntp_nanos: i64, arrival: Nanos) {
        let extended = if self.first_arrival.is_some() {
            self.unwrapper.peek(rtp)
        } else {
            self.unwrapper.unwrap(rtp)
        };
        let staleness = self
            .recent
            .iter()
            .find(|&&(seen, _)| seen == extended)
            .map_or(0, |&(_, received)| (arrival - received).max(0));
        if staleness > MAX_REPORT_STALENESS {
            return;
        }
        self.reports.add(extended, ntp_nanos - staleness / 2);
    }

    /// The extended form of a timestamp near those already seen.
    pub(crate) fn extend(&self, ts: u32) -> i64 {
        self.unwrapper.peek(ts)
    }

    /// When the track's first packet arrived.
    pub(crate) fn first_arrival(&self) -> Option<Nanos> {
        self.first_arrival
    }

    /// What the sender reports say so far.
    pub(crate) fn estimate(&self) -> Option<ReportEstimate> {
        self.reports.estimate()
    }

    /// Where the track is placed.
    pub(crate) fn placement(&self) -> Placement {
        self.placement
    }

    /// Places the track by arrivals, if it is not placed yet: from now on its frames are
    /// written, so this is where it stays unless the reports move it once.
    pub(crate) fn place_provisionally(&mut self) {
        if let (Placement::Unplaced, Some(zero)) = (self.placement, self.arrival_zero) {
            self.placement = Placement::Provisional(zero);
        }
    }

    /// Places the track for good with RTP zero at `zero`.
    pub(crate) fn place_finally(&mut self, zero: Nanos) {
        self.placement = Placement::Final(zero);
    }

    /// Recorder-clock time of extended RTP time `rtp`, once the track is placed.
    pub(crate) fn to_local(&self, rtp: i64) -> Option<Nanos> {
        match self.placement {
            Placement::Unplaced => None,
            Placement::Provisional(zero) | Placement::Final(zero) => {
                Some(zero + self.ticks_to_nanos(rtp))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn unwrapper_crosses_wraparound_both_ways() {
        let mut u = RtpUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), i64::from(u32::MAX - 10));
        assert_eq!(u.unwrap(5), i64::from(u32::MAX) + 6);
        assert_eq!(u.unwrap(u32::MAX - 20), i64::from(u32::MAX - 20));
        assert_eq!(u.unwrap(100), i64::from(u32::MAX) + 101);
    }

    #[test]
    fn provisional_placement_takes_the_least_delayed_packet_so_far() {
        let mut clock = TrackClock::new(90_000);
        clock.on_packet(0, 30 * MS);
        clock.on_packet(9_000, 100 * MS);
        clock.place_provisionally();
        assert_eq!(clock.to_local(0), Some(0));
        // Later packets no longer move a placed track.
        clock.on_packet(18_000, 150 * MS);
        assert_eq!(clock.to_local(0), Some(0));
    }

    #[test]
    fn a_report_naming_a_received_packet_is_moved_back_by_half_its_staleness() {
        let ntp0 = 3_900_000_000 * 1_000_000_000;
        let mut clock = TrackClock::new(90_000);
        clock.on_packet(9_000, 100 * MS);
        // Sent 30 ms after that packet, with that packet's RTP time.
        clock.on_sender_report(9_000, ntp0 + 100 * MS + 30 * MS, 130 * MS);
        let estimate = clock.estimate().expect("estimate");
        assert_eq!(estimate.ntp_at_zero, ntp0 + 15 * MS);
        // A report with its own RTP time is taken as it is.
        let mut clock = TrackClock::new(90_000);
        clock.on_packet(9_000, 100 * MS);
        clock.on_sender_report(11_700, ntp0 + 130 * MS, 130 * MS);
        assert_eq!(clock.estimate().map(|e| e.ntp_at_zero), Some(ntp0));
    }
}

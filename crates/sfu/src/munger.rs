//! The RTP munger of one down track: turns the track's compacted sequence numbers and the
//! publisher's timestamps into one continuous numbering for one viewer, across publisher
//! changes (reconnect, takeover).
//!
//! Each publisher generation (one `set_publisher`) gets its own offsets, fixed at the
//! packet where the viewer starts: for a brand-new viewer that is the publisher's own
//! numbering; after a publisher change it is the last sequence number sent plus one and the
//! last timestamp plus the wall time elapsed since. Before its start packet and for any
//! packet older than it, the viewer gets nothing.

use std::time::Instant;

/// What the viewer saw last, carried across publisher generations.
#[derive(Debug, Clone, Copy)]
struct LastSent {
    /// Viewer sequence number of the newest packet sent.
    seq: u16,
    /// Viewer timestamp of the newest packet sent.
    timestamp: u32,
    /// When that packet was forwarded.
    at: Instant,
}

/// Offsets of the current generation, fixed at the viewer's start packet.
#[derive(Debug, Clone, Copy)]
struct Started {
    /// Compacted sequence number of the start packet; anything older is not for this viewer.
    start: u64,
    /// Newest compacted sequence number forwarded in this generation.
    highest: u64,
    seq_offset: u16,
    ts_offset: u32,
}

/// Sequence-number and timestamp rewriting for one viewer of one track.
#[derive(Debug, Default)]
pub(crate) struct RtpMunger {
    started: Option<Started>,
    last: Option<LastSent>,
}

/// Viewer-side numbers for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Munged {
    /// The viewer's sequence number.
    pub(crate) seq: u16,
    /// The viewer's timestamp.
    pub(crate) timestamp: u32,
}

impl RtpMunger {
    /// Forgets the current generation's offsets: the next start packet resumes the
    /// viewer's numbering where it stopped.
    pub(crate) fn new_source(&mut self) {
        self.started = None;
    }

    /// Whether the viewer has started in the current generation.
    pub(crate) fn is_started(&self) -> bool {
        self.started.is_some()
    }

    /// The timestamp offset of the current generation, once started.
    pub(crate) fn ts_offset(&self) -> Option<u32> {
        self.started.map(|started| started.ts_offset)
    }

    /// Rewrites a live packet. `can_start` says whether it may begin the viewer's stream
    /// (a keyframe start for video, any packet for audio). `None` means "not for this
    /// viewer".
    pub(crate) fn munge(
        &mut self,
        compacted: u64,
        timestamp: u32,
        can_start: bool,
        clock_rate: u32,
        now: Instant,
    ) -> Option<Munged> {
        if self.started.is_none() {
            if !can_start {
                return None;
            }
            self.started = Some(start_at(self.last, compacted, timestamp, clock_rate, now));
        }
        let started = self.started.as_mut()?;
        if compacted < started.start {
            return None;
        }
        let munged = apply(started, compacted, timestamp);
        if compacted >= started.highest {
            started.highest = compacted;
            self.last = Some(LastSent {
                seq: munged.seq,
                timestamp: munged.timestamp,
                at: now,
            });
        }
        Some(munged)
    }

    /// Maps a viewer sequence number from a NACK back to the track's compacted number,
    /// if it names a packet this viewer was sent (or would have been, had it not been
    /// lost) in the current generation.
    pub(crate) fn to_compacted(&self, viewer_seq: u16) -> Option<u64> {
        let started = self.started?;
        let track_seq = viewer_seq.wrapping_sub(started.seq_offset);
        let delta = i64::from(track_seq.wrapping_sub(started.highest as u16) as i16);
        let compacted = started.highest.checked_add_signed(delta)?;
        (started.start..=started.highest)
            .contains(&compacted)
            .then_some(compacted)
    }

    /// Rewrites a retransmitted packet; it must come from [`Self::to_compacted`].
    pub(crate) fn munge_retransmission(&self, compacted: u64, timestamp: u32) -> Option<Munged> {
        let started = self.started?;
        (compacted >= started.start).then(|| apply(&started, compacted, timestamp))
    }
}

fn apply(started: &Started, compacted: u64, timestamp: u32) -> Munged {
    Munged {
        seq: (compacted as u16).wrapping_add(started.seq_offset),
        timestamp: timestamp.wrapping_add(started.ts_offset),
    }
}

/// Offsets that make the start packet follow on from what the viewer saw last.
fn start_at(
    last: Option<LastSent>,
    compacted: u64,
    timestamp: u32,
    clock_rate: u32,
    now: Instant,
) -> Started {
    let (seq_offset, ts_offset) = match last {
        None => (0, 0),
        Some(last) => {
            let elapsed = now.saturating_duration_since(last.at);
            let ticks = (elapsed.as_secs_f64() * f64::from(clock_rate)).round();
            // Truncating a gap of more than a day of ticks to 32 bits is fine: RTP
            // timestamps wrap anyway, and the viewer only needs them to move forward.
            let ticks = (ticks as u64).max(1) as u32;
            let next_seq = last.seq.wrapping_add(1);
            let next_ts = last.timestamp.wrapping_add(ticks);
            (
                next_seq.wrapping_sub(compacted as u16),
                next_ts.wrapping_sub(timestamp),
            )
        }
    };
    Started {
        start: compacted,
        highest: compacted,
        seq_offset,
        ts_offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waits_for_a_start_packet_then_drops_older_ones() {
        let now = Instant::now();
        let mut munger = RtpMunger::default();
        assert_eq!(munger.munge(10, 1000, false, 90_000, now), None);
        assert!(munger.munge(11, 2000, true, 90_000, now).is_some());
        assert_eq!(munger.munge(10, 1000, false, 90_000, now), None);
        assert!(munger.munge(12, 2000, false, 90_000, now).is_some());
    }

    #[test]
    fn resumes_after_a_publisher_change() {
        let t0 = Instant::now();
        let mut munger = RtpMunger::default();
        let first = munger.munge(100, 5000, true, 90_000, t0).unwrap();
        let last = munger.munge(101, 8000, false, 90_000, t0).unwrap();
        munger.new_source();
        let t1 = t0 + Duration::from_millis(500);
        let resumed = munger.munge(70_000, 123, true, 90_000, t1).unwrap();
        assert_eq!(first.seq, 100);
        assert_eq!(resumed.seq, last.seq.wrapping_add(1));
        assert_eq!(resumed.timestamp, last.timestamp.wrapping_add(45_000));
        let next = munger.munge(70_001, 3123, false, 90_000, t1).unwrap();
        assert_eq!(next.seq, resumed.seq.wrapping_add(1));
        assert_eq!(next.timestamp, resumed.timestamp.wrapping_add(3000));
    }

    #[test]
    fn timestamp_moves_forward_even_without_elapsed_time() {
        let t0 = Instant::now();
        let mut munger = RtpMunger::default();
        let last = munger.munge(1, 0, true, 48_000, t0).unwrap();
        munger.new_source();
        let resumed = munger.munge(9, u32::MAX, true, 48_000, t0).unwrap();
        assert_eq!(resumed.timestamp, last.timestamp.wrapping_add(1));
    }

    #[test]
    fn maps_nacked_sequence_numbers_back() {
        let now = Instant::now();
        let mut munger = RtpMunger::default();
        munger.munge(65_530, 0, true, 90_000, now).unwrap();
        munger.munge(65_540, 0, false, 90_000, now).unwrap();
        assert_eq!(munger.to_compacted(65_535), Some(65_535));
        assert_eq!(munger.to_compacted(2), Some(65_538));
        assert_eq!(munger.to_compacted(65_529), None);
        assert_eq!(munger.to_compacted(5), None);
    }
}

//! The RTP munger of one down track: turns the track's compacted sequence numbers and the
//! publisher's timestamps into one continuous numbering for one viewer, across publisher
//! changes (reconnect, takeover), layer switches and packets dropped for this viewer alone.
//!
//! Each publisher generation (one `set_publisher`, or a switch to another simulcast layer)
//! gets its own offsets, fixed at the packet where the viewer starts: for a brand-new viewer
//! that is the publisher's own numbering; after a change it is the last sequence number sent
//! plus one and the last timestamp plus the wall time elapsed since. Before its start packet
//! and for any packet older than it, the viewer gets nothing.
//!
//! Within a generation, packets the viewer does not get (frames of a dropped temporal layer)
//! are [`RtpMunger::skip`]ped: later packets move down to close the gap, in a new *epoch* of
//! offsets. Earlier epochs are kept (a bounded few) so that a late packet and a NACKed
//! sequence number still map to the numbers the viewer saw. Viewers that never skip have one
//! epoch and allocate nothing.

use std::collections::VecDeque;
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

/// Offsets that hold from one compacted sequence number on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Epoch {
    /// The first compacted sequence number they apply to.
    since: u64,
    seq_offset: u16,
    /// Pictures (VP8 picture ids) dropped for this viewer before `since`.
    picture_offset: u16,
}

/// Earlier epochs kept for late packets and NACKs: at 30 frames/s with every other frame
/// dropped, several seconds' worth.
const HISTORY: usize = 64;

/// Offsets of the current generation, fixed at the viewer's start packet.
#[derive(Debug, Clone)]
struct Started {
    /// Compacted sequence number of the start packet; anything older is not for this viewer.
    start: u64,
    /// Newest compacted sequence number forwarded or skipped in this generation.
    highest: u64,
    ts_offset: u32,
    current: Epoch,
    /// Earlier epochs, oldest first; empty (unallocated) until the first skip.
    history: VecDeque<Epoch>,
}

impl Started {
    /// The epoch a compacted number (not older than `start`) falls in; `None` when it is
    /// older than the history kept.
    fn epoch_of(&self, compacted: u64) -> Option<&Epoch> {
        if compacted >= self.current.since {
            return Some(&self.current);
        }
        self.history
            .iter()
            .rev()
            .find(|epoch| epoch.since <= compacted)
    }

    /// Makes `epoch` the current one from the newest packet `at` on. A current epoch that
    /// starts at `at` itself numbered nothing yet and is simply replaced.
    fn start_epoch(&mut self, at: u64, epoch: Epoch) {
        if self.current.since == at {
            self.current = epoch;
            return;
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(self.current);
        self.current = epoch;
    }
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
    /// How many pictures fewer the viewer's picture ids count than the publisher's.
    pub(crate) picture_offset: u16,
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

    /// The newest compacted sequence number forwarded or skipped, once started.
    pub(crate) fn highest(&self) -> Option<u64> {
        self.started.as_ref().map(|started| started.highest)
    }

    /// The timestamp offset of the current generation, once started.
    pub(crate) fn ts_offset(&self) -> Option<u32> {
        self.started.as_ref().map(|started| started.ts_offset)
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
        let munged = apply(
            started.epoch_of(compacted)?,
            started.ts_offset,
            compacted,
            timestamp,
        );
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

    /// A live packet this viewer does not get (`picture`: the first packet of a dropped
    /// frame): the packets after it move down one sequence number (and one picture id). A
    /// packet older than the newest one seen leaves its hole (later packets were numbered
    /// already).
    pub(crate) fn skip(&mut self, compacted: u64, picture: bool) {
        let Some(started) = self.started.as_mut() else {
            return;
        };
        if compacted <= started.highest {
            return;
        }
        started.highest = compacted;
        let next = Epoch {
            since: compacted + 1,
            seq_offset: started.current.seq_offset.wrapping_sub(1),
            picture_offset: started
                .current
                .picture_offset
                .wrapping_add(u16::from(picture)),
        };
        // After a skipped packet the current epoch starts here: runs of skips merge.
        started.start_epoch(compacted, next);
    }

    /// Drops the picture renumbering from `compacted` on (a keyframe, where the viewer may
    /// jump ahead to the publisher's picture ids), if it is the newest packet.
    pub(crate) fn rebase_pictures(&mut self, compacted: u64) {
        let Some(started) = self.started.as_mut() else {
            return;
        };
        if started.current.picture_offset == 0 || compacted <= started.highest {
            return;
        }
        let epoch = Epoch {
            since: compacted,
            picture_offset: 0,
            ..started.current
        };
        started.start_epoch(compacted, epoch);
    }

    /// Maps a viewer sequence number from a NACK back to the track's compacted number,
    /// if it names a packet this viewer was sent (or would have been, had it not been
    /// lost) in the current generation.
    pub(crate) fn to_compacted(&self, viewer_seq: u16) -> Option<u64> {
        let started = self.started.as_ref()?;
        let unwrap = |offset: u16| {
            let track_seq = viewer_seq.wrapping_sub(offset);
            let delta = i64::from(track_seq.wrapping_sub(started.highest as u16) as i16);
            started.highest.checked_add_signed(delta)
        };
        // Newest epoch first; each one covers its numbers up to the next one's start, minus
        // the skipped packets just before it (whose viewer numbers the next epoch took).
        let mut newer: Option<&Epoch> = None;
        for epoch in std::iter::once(&started.current).chain(started.history.iter().rev()) {
            let end = match newer {
                None => started.highest + 1,
                Some(next) => next
                    .since
                    .saturating_sub(u64::from(epoch.seq_offset.wrapping_sub(next.seq_offset))),
            };
            if let Some(compacted) = unwrap(epoch.seq_offset)
                && compacted >= epoch.since.max(started.start)
                && compacted < end
            {
                return Some(compacted);
            }
            newer = Some(epoch);
        }
        None
    }

    /// Rewrites a retransmitted packet; it must come from [`Self::to_compacted`].
    pub(crate) fn munge_retransmission(&self, compacted: u64, timestamp: u32) -> Option<Munged> {
        let started = self.started.as_ref()?;
        if compacted < started.start {
            return None;
        }
        let epoch = started.epoch_of(compacted)?;
        Some(apply(epoch, started.ts_offset, compacted, timestamp))
    }
}

fn apply(epoch: &Epoch, ts_offset: u32, compacted: u64, timestamp: u32) -> Munged {
    Munged {
        seq: (compacted as u16).wrapping_add(epoch.seq_offset),
        timestamp: timestamp.wrapping_add(ts_offset),
        picture_offset: epoch.picture_offset,
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
        ts_offset,
        current: Epoch {
            since: compacted,
            seq_offset,
            picture_offset: 0,
        },
        history: VecDeque::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock;
    use std::time::Duration;

    #[test]
    fn waits_for_a_start_packet_then_drops_older_ones() {
        let now = test_clock::start();
        let mut munger = RtpMunger::default();
        assert_eq!(munger.munge(10, 1000, false, 90_000, now), None);
        assert!(munger.munge(11, 2000, true, 90_000, now).is_some());
        assert_eq!(munger.munge(10, 1000, false, 90_000, now), None);
        assert!(munger.munge(12, 2000, false, 90_000, now).is_some());
    }

    #[test]
    fn resumes_after_a_publisher_change() {
        let t0 = test_clock::start();
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
        let t0 = test_clock::start();
        let mut munger = RtpMunger::default();
        let last = munger.munge(1, 0, true, 48_000, t0).unwrap();
        munger.new_source();
        let resumed = munger.munge(9, u32::MAX, true, 48_000, t0).unwrap();
        assert_eq!(resumed.timestamp, last.timestamp.wrapping_add(1));
    }

    #[test]
    fn maps_nacked_sequence_numbers_back() {
        let now = test_clock::start();
        let mut munger = RtpMunger::default();
        munger.munge(65_530, 0, true, 90_000, now).unwrap();
        munger.munge(65_540, 0, false, 90_000, now).unwrap();
        assert_eq!(munger.to_compacted(65_535), Some(65_535));
        assert_eq!(munger.to_compacted(2), Some(65_538));
        assert_eq!(munger.to_compacted(65_529), None);
        assert_eq!(munger.to_compacted(5), None);
    }

    #[test]
    fn skipped_packets_leave_no_gap_and_nacks_map_through_the_epochs() {
        let now = test_clock::start();
        let mut munger = RtpMunger::default();
        let mut sent = Vec::new();
        // Compacted 100..140: every packet whose number is 1 or 3 mod 4 is skipped, each a
        // frame of its own, except 100 (the start).
        for compacted in 100..140u64 {
            if compacted > 100 && compacted % 2 == 1 {
                munger.skip(compacted, true);
            } else {
                let munged = munger
                    .munge(compacted, 0, compacted == 100, 90_000, now)
                    .unwrap();
                sent.push((compacted, munged));
            }
        }
        let seqs: Vec<u16> = sent.iter().map(|(_, m)| m.seq).collect();
        let expected: Vec<u16> = (100..100 + sent.len() as u16).collect();
        assert_eq!(seqs, expected, "consecutive for the viewer");
        for (compacted, munged) in &sent {
            assert_eq!(munger.to_compacted(munged.seq), Some(*compacted));
            assert_eq!(
                munger.munge_retransmission(*compacted, 0).unwrap(),
                *munged,
                "a retransmission carries the numbers first sent"
            );
            assert_eq!(munged.picture_offset, ((compacted - 100) / 2) as u16);
        }
        // The next viewer number is not sent yet.
        assert_eq!(munger.to_compacted(seqs.last().unwrap() + 1), None);
    }

    #[test]
    fn runs_of_skips_merge_and_late_packets_fill_their_own_slot() {
        let now = test_clock::start();
        let mut munger = RtpMunger::default();
        munger.munge(10, 0, true, 90_000, now).unwrap();
        munger.skip(11, true);
        munger.skip(12, false);
        let after = munger.munge(13, 0, false, 90_000, now).unwrap();
        assert_eq!(after.seq, 11);
        assert_eq!(after.picture_offset, 1);
        // 15 arrives before 14: skipping 16 then, and 14 comes late.
        munger.munge(15, 0, false, 90_000, now).unwrap();
        munger.skip(16, true);
        let late = munger.munge(14, 0, false, 90_000, now).unwrap();
        assert_eq!(late.seq, 12);
        assert_eq!(munger.munge(17, 0, false, 90_000, now).unwrap().seq, 14);
        assert_eq!(munger.to_compacted(12), Some(14));
        assert_eq!(munger.to_compacted(14), Some(17));
        // A late packet that is skipped leaves its hole alone.
        munger.skip(12, false);
        assert_eq!(munger.munge(18, 0, false, 90_000, now).unwrap().seq, 15);
    }

    #[test]
    fn old_epochs_are_forgotten_beyond_the_history() {
        let now = test_clock::start();
        let mut munger = RtpMunger::default();
        munger.munge(0, 0, true, 90_000, now).unwrap();
        for frame in 0..(HISTORY as u64 + 10) {
            munger.skip(frame * 2 + 1, true);
            munger.munge(frame * 2 + 2, 0, false, 90_000, now).unwrap();
        }
        assert_eq!(
            munger.munge(2, 0, false, 90_000, now),
            None,
            "too old to place"
        );
        let newest = munger.munge(200, 0, false, 90_000, now).unwrap();
        assert_eq!(munger.to_compacted(newest.seq), Some(200));
    }

    #[test]
    fn a_keyframe_can_drop_the_picture_renumbering() {
        let now = test_clock::start();
        let mut munger = RtpMunger::default();
        munger.munge(1, 0, true, 90_000, now).unwrap();
        munger.skip(2, true);
        assert_eq!(
            munger
                .munge(3, 0, false, 90_000, now)
                .unwrap()
                .picture_offset,
            1
        );
        munger.rebase_pictures(4);
        let keyframe = munger.munge(4, 0, false, 90_000, now).unwrap();
        assert_eq!((keyframe.seq, keyframe.picture_offset), (3, 0));
        assert_eq!(munger.munge_retransmission(3, 0).unwrap().picture_offset, 1);
    }
}

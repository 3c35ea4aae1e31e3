//! Sequence-number bookkeeping for one publisher track: unwrapping the 16-bit RTP sequence
//! number into a 64-bit one, and compacting the sequence space where padding-only packets
//! were dropped so viewers never see a gap for them.
//!
//! The compacted sequence number is the track's own numbering, shared by every viewer and
//! by the NACK cache; each viewer's munger only adds its own offset to it. The model is
//! LiveKit's `RTPMunger` range map: a late packet is placed by counting the padding packets
//! dropped before its sequence number, not before its arrival.

use std::collections::VecDeque;

/// How far behind the newest packet a late packet may arrive and still be placed.
///
/// Older packets are dropped: a viewer would have given up on them long ago.
pub(crate) const LATE_WINDOW: u64 = 2048;

/// Extended numbers start here so that late packets just before the first one do not
/// underflow.
const EXTENDED_BASE: u64 = 1 << 32;

/// Turns 16-bit RTP sequence numbers into monotonic 64-bit ones.
#[derive(Debug, Default)]
pub(crate) struct SeqUnwrapper {
    highest: Option<u64>,
}

/// Where an unwrapped packet sits relative to the packets seen before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unwrapped {
    /// The 64-bit sequence number.
    pub(crate) extended: u64,
    /// Whether it is newer than every packet seen before.
    pub(crate) is_newest: bool,
}

impl SeqUnwrapper {
    /// Unwraps `seq`, or `None` when it is more than [`LATE_WINDOW`] behind the newest.
    pub(crate) fn unwrap(&mut self, seq: u16) -> Option<Unwrapped> {
        let Some(highest) = self.highest else {
            let extended = EXTENDED_BASE + u64::from(seq);
            self.highest = Some(extended);
            return Some(Unwrapped {
                extended,
                is_newest: true,
            });
        };
        // The i16 distance picks the nearest candidate around the newest packet.
        let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
        let extended = highest.checked_add_signed(delta)?;
        if delta > 0 {
            self.highest = Some(extended);
            return Some(Unwrapped {
                extended,
                is_newest: true,
            });
        }
        if highest - extended > LATE_WINDOW {
            return None;
        }
        Some(Unwrapped {
            extended,
            is_newest: false,
        })
    }
}

/// Removes dropped padding packets from a track's sequence space.
#[derive(Debug, Default)]
pub(crate) struct PaddingCompactor {
    /// Extended sequence numbers of recently dropped padding packets, ascending.
    dropped: VecDeque<u64>,
    /// Every padding packet ever dropped, including those pruned from `dropped`.
    total_dropped: u64,
}

impl PaddingCompactor {
    /// Records a dropped padding packet. Only the newest packet can be compacted away: a
    /// late one sits between packets already numbered, so it leaves a gap instead.
    pub(crate) fn drop_padding(&mut self, at: Unwrapped) {
        if !at.is_newest {
            return;
        }
        self.dropped.push_back(at.extended);
        self.total_dropped += 1;
        // Packets older than the late window are refused, so older drops only matter as a
        // count.
        while let Some(&oldest) = self.dropped.front() {
            if oldest + 2 * LATE_WINDOW >= at.extended {
                break;
            }
            self.dropped.pop_front();
        }
    }

    /// The compacted sequence number of a media packet, or `None` if `extended` is the
    /// number of a padding packet dropped earlier.
    pub(crate) fn compact(&self, extended: u64) -> Option<u64> {
        let not_after = self.dropped.partition_point(|&seq| seq <= extended);
        if not_after > 0 && self.dropped.get(not_after - 1) == Some(&extended) {
            return None;
        }
        let dropped_after = (self.dropped.len() - not_after) as u64;
        let dropped_before = self.total_dropped - dropped_after;
        extended.checked_sub(dropped_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_across_the_16_bit_boundary() {
        let mut unwrapper = SeqUnwrapper::default();
        let a = unwrapper.unwrap(65_534).unwrap();
        let b = unwrapper.unwrap(65_535).unwrap();
        let c = unwrapper.unwrap(1).unwrap();
        let late = unwrapper.unwrap(0).unwrap();
        assert_eq!(b.extended, a.extended + 1);
        assert_eq!(c.extended, a.extended + 3);
        assert!(c.is_newest);
        assert_eq!(late.extended, a.extended + 2);
        assert!(!late.is_newest);
    }

    #[test]
    fn refuses_packets_beyond_the_late_window() {
        let mut unwrapper = SeqUnwrapper::default();
        unwrapper.unwrap(10_000).unwrap();
        assert!(unwrapper.unwrap(10_000 - LATE_WINDOW as u16).is_some());
        assert!(unwrapper.unwrap(10_000 - LATE_WINDOW as u16 - 1).is_none());
    }

    #[test]
    fn compacts_padding_and_places_late_packets() {
        let mut unwrapper = SeqUnwrapper::default();
        let mut compactor = PaddingCompactor::default();
        // 1 media, 2 lost for now, 3 padding, 4 padding, 5 media, then 2 arrives late.
        let one = unwrapper.unwrap(1).unwrap();
        let base = compactor.compact(one.extended).unwrap();
        let three = unwrapper.unwrap(3).unwrap();
        compactor.drop_padding(three);
        let four = unwrapper.unwrap(4).unwrap();
        compactor.drop_padding(four);
        let five = unwrapper.unwrap(5).unwrap();
        assert_eq!(compactor.compact(five.extended), Some(base + 2));
        let two = unwrapper.unwrap(2).unwrap();
        assert_eq!(compactor.compact(two.extended), Some(base + 1));
        // A media packet reusing a dropped padding number cannot be placed.
        assert_eq!(compactor.compact(three.extended), None);
    }

    #[test]
    fn late_padding_is_not_compacted() {
        let mut unwrapper = SeqUnwrapper::default();
        let mut compactor = PaddingCompactor::default();
        let one = unwrapper.unwrap(1).unwrap();
        let base = compactor.compact(one.extended).unwrap();
        let three = unwrapper.unwrap(3).unwrap();
        assert_eq!(compactor.compact(three.extended), Some(base + 2));
        let two = unwrapper.unwrap(2).unwrap();
        compactor.drop_padding(two);
        assert_eq!(compactor.compact(three.extended), Some(base + 2));
    }

    #[test]
    fn pruning_keeps_the_count() {
        let mut unwrapper = SeqUnwrapper::default();
        let mut compactor = PaddingCompactor::default();
        let mut seq = 0u16;
        for _ in 0..10_000 {
            seq = seq.wrapping_add(1);
            compactor.drop_padding(unwrapper.unwrap(seq).unwrap());
        }
        seq = seq.wrapping_add(1);
        let media = unwrapper.unwrap(seq).unwrap();
        assert_eq!(
            compactor.compact(media.extended),
            Some(media.extended - 10_000)
        );
        assert!(compactor.dropped.len() <= 2 * LATE_WINDOW as usize + 1);
    }
}

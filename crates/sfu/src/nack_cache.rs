//! The NACK cache of one publisher track: a ring of the last [`NACK_CACHE_SIZE`] media
//! packets, keyed by the track's compacted sequence number and shared by every viewer.
//!
//! Packets are kept exactly as the publisher sent them (payloads are `Bytes`, so nothing is
//! copied); a retransmission is rewritten for the asking viewer by its down track, like a
//! live packet. The cache does not decide who may get a packet or how often: that is the
//! down track's call.

use rtc::rtp::Packet;

/// How many packets one track keeps for retransmission.
pub const NACK_CACHE_SIZE: usize = 1024;

#[derive(Debug)]
struct Entry {
    compacted: u64,
    packet: Packet,
}

/// A fixed ring of recent packets of one track.
#[derive(Debug)]
pub(crate) struct NackCache {
    slots: Vec<Option<Entry>>,
}

impl NackCache {
    /// An empty cache; the ring is allocated once here and reused.
    pub(crate) fn new() -> Self {
        let mut slots = Vec::with_capacity(NACK_CACHE_SIZE);
        slots.resize_with(NACK_CACHE_SIZE, || None);
        Self { slots }
    }

    fn slot(compacted: u64) -> usize {
        (compacted % NACK_CACHE_SIZE as u64) as usize
    }

    /// Stores a packet, unless its slot already holds a newer one (it is too old to keep).
    pub(crate) fn insert(&mut self, compacted: u64, packet: Packet) {
        let slot = &mut self.slots[Self::slot(compacted)];
        if let Some(existing) = slot
            && existing.compacted > compacted
        {
            return;
        }
        *slot = Some(Entry { compacted, packet });
    }

    /// Whether a packet with this compacted sequence number would be stored as new: its slot
    /// is empty or holds an older packet. `false` for a packet stored before (a duplicate) and
    /// for one older than the slot's (too old to tell).
    pub(crate) fn is_new(&self, compacted: u64) -> bool {
        self.slots[Self::slot(compacted)]
            .as_ref()
            .is_none_or(|entry| entry.compacted < compacted)
    }

    /// The packet with this compacted sequence number, if still cached.
    pub(crate) fn get(&self, compacted: u64) -> Option<&Packet> {
        match &self.slots[Self::slot(compacted)] {
            Some(entry) if entry.compacted == compacted => Some(&entry.packet),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> Packet {
        let mut packet = Packet::default();
        packet.header.sequence_number = seq;
        packet
    }

    #[test]
    fn keeps_the_last_packets_and_evicts_older_ones() {
        let mut cache = NackCache::new();
        for compacted in 0..(NACK_CACHE_SIZE as u64 + 10) {
            cache.insert(compacted, packet(compacted as u16));
        }
        assert!(cache.get(9).is_none());
        assert_eq!(cache.get(10).map(|p| p.header.sequence_number), Some(10));
        assert!(cache.get(NACK_CACHE_SIZE as u64 + 9).is_some());
        assert!(cache.get(NACK_CACHE_SIZE as u64 + 10).is_none());
    }

    #[test]
    fn tells_new_packets_from_stored_and_too_old_ones() {
        let mut cache = NackCache::new();
        assert!(cache.is_new(5));
        cache.insert(5, packet(5));
        assert!(!cache.is_new(5));
        assert!(cache.is_new(6));
        cache.insert(NACK_CACHE_SIZE as u64 + 6, packet(6));
        assert!(!cache.is_new(6), "older than its slot's packet");
        assert!(cache.is_new(2 * NACK_CACHE_SIZE as u64 + 5));
    }

    #[test]
    fn a_late_packet_never_overwrites_a_newer_one() {
        let mut cache = NackCache::new();
        cache.insert(NACK_CACHE_SIZE as u64 + 1, packet(2));
        cache.insert(1, packet(1));
        assert!(cache.get(1).is_none());
        assert!(cache.get(NACK_CACHE_SIZE as u64 + 1).is_some());
    }
}

//! Send-time stamps: how a viewer learns when the packet it just received was sent.
//!
//! The publisher and the viewers live in one process, so they share one clock. Every
//! synthetic packet carries, in its last [`STAMP_LEN`] payload bytes, an index into a
//! [`SendTimes`] table where the publisher wrote the instant it handed the packet to its
//! stack. The index is written twice (plain and XORed with a constant) so a viewer can tell a
//! stamp from filler, whatever the SSRC, sequence number or timestamp the server rewrote.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes at the end of every synthetic payload that hold the stamp.
pub const STAMP_LEN: usize = 8;

/// XORed into the second copy of the index so filler never reads as a stamp.
const CHECK: u32 = 0xd1ec_7010;

/// Slots in the table: two million packets, over three hours of 1 Mbit/s video.
const SLOTS: usize = 1 << 21;

/// The send instant of every stamped packet, shared by the publisher and the viewers.
pub struct SendTimes {
    base: Instant,
    next: AtomicU32,
    /// Nanoseconds since `base`, plus one; zero means "not sent yet".
    slots: Box<[AtomicU64]>,
}

impl SendTimes {
    /// An empty table whose clock starts now.
    pub fn new() -> Self {
        SendTimes {
            base: Instant::now(),
            next: AtomicU32::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Takes the next index and records `now` as its send instant.
    pub fn stamp(&self, now: Instant) -> u32 {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let nanos = now.saturating_duration_since(self.base).as_nanos() as u64;
        self.slots[index as usize % SLOTS].store(nanos + 1, Ordering::Release);
        index
    }

    /// Records `now` as the send instant of the packet stamped `index` (a paced packet leaves
    /// after its frame was made).
    pub fn restamp(&self, index: u32, now: Instant) {
        let nanos = now.saturating_duration_since(self.base).as_nanos() as u64;
        self.slots[index as usize % SLOTS].store(nanos + 1, Ordering::Release);
    }

    /// When the packet with `index` was sent, if it was.
    pub fn sent_at(&self, index: u32) -> Option<Instant> {
        match self.slots[index as usize % SLOTS].load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.base + Duration::from_nanos(nanos - 1)),
        }
    }

    /// How many packets have been stamped.
    pub fn count(&self) -> u32 {
        self.next.load(Ordering::Relaxed)
    }
}

impl Default for SendTimes {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes the stamp for `index` into the last [`STAMP_LEN`] bytes of `payload`.
///
/// Payloads shorter than a stamp are left alone (the packetizer never makes one).
pub fn write_stamp(payload: &mut [u8], index: u32) {
    let Some(start) = payload.len().checked_sub(STAMP_LEN) else {
        return;
    };
    payload[start..start + 4].copy_from_slice(&index.to_le_bytes());
    payload[start + 4..].copy_from_slice(&(index ^ CHECK).to_le_bytes());
}

/// Reads the stamp at the end of `payload`, if it carries one.
pub fn read_stamp(payload: &[u8]) -> Option<u32> {
    let start = payload.len().checked_sub(STAMP_LEN)?;
    let index = u32::from_le_bytes(payload[start..start + 4].try_into().ok()?);
    let check = u32::from_le_bytes(payload[start + 4..].try_into().ok()?);
    (index ^ CHECK == check).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_filler_does_not() {
        let mut payload = vec![0x5a; 40];
        assert_eq!(read_stamp(&payload), None);
        write_stamp(&mut payload, 123_456);
        assert_eq!(read_stamp(&payload), Some(123_456));
        assert_eq!(read_stamp(&payload[..4]), None);
    }

    #[test]
    fn send_instants_are_kept_per_index() {
        let times = SendTimes::new();
        let now = Instant::now();
        let first = times.stamp(now);
        let second = times.stamp(now + Duration::from_millis(5));
        assert_eq!(second, first + 1);
        assert_eq!(times.sent_at(first), Some(now));
        assert!(times.sent_at(second).is_some_and(|t| t >= now));
        assert_eq!(times.sent_at(second + 1), None);
    }
}

//! What a viewer received on one track, and the checks tests run over it: gaps, jumps and
//! resets in the sequence numbers, and whether timestamps move forward.

use std::time::{Duration, Instant};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// An audio track (Opus).
    Audio,
    /// A video track (VP8).
    Video,
}

/// The header of one received RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpRecord {
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Whether the payload starts a VP8 frame: descriptor S=1, PID=0 (always false on audio).
    pub frame_start: bool,
    /// Whether the payload starts a VP8 keyframe (always false on audio).
    pub keyframe_start: bool,
    /// When it arrived.
    pub at: Instant,
}

/// Everything received on the tracks of one kind.
#[derive(Debug, Clone)]
pub struct TrackLog {
    /// Audio or video.
    pub kind: MediaKind,
    /// The negotiated codec's MIME type, once a track opened.
    pub codec: Option<String>,
    /// How many remote tracks of this kind opened (1 for a steady connection).
    pub tracks_opened: u32,
    /// Packets received.
    pub packets: u64,
    /// Packets that started a keyframe.
    pub keyframes: u64,
    /// Every packet's header, in arrival order (empty when recording is off).
    pub records: Vec<RtpRecord>,
    /// The first packet received.
    pub first: Option<RtpRecord>,
    /// When the first keyframe start arrived.
    pub first_keyframe_at: Option<Instant>,
}

impl TrackLog {
    pub(crate) fn new(kind: MediaKind) -> Self {
        TrackLog {
            kind,
            codec: None,
            tracks_opened: 0,
            packets: 0,
            keyframes: 0,
            records: Vec::new(),
            first: None,
            first_keyframe_at: None,
        }
    }

    pub(crate) fn push(&mut self, record: RtpRecord, keep: bool) {
        self.packets += 1;
        if self.first.is_none() {
            self.first = Some(record);
        }
        if record.keyframe_start {
            self.keyframes += 1;
            self.first_keyframe_at.get_or_insert(record.at);
        }
        if keep {
            self.records.push(record);
        }
    }

    /// Whether the first packet received started a keyframe; `None` before any packet.
    pub fn first_is_keyframe(&self) -> Option<bool> {
        self.first.map(|r| r.keyframe_start)
    }

    /// The distinct SSRCs seen, in order of first appearance.
    pub fn ssrcs(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for r in &self.records {
            if !out.contains(&r.ssrc) {
                out.push(r.ssrc);
            }
        }
        out
    }

    /// The sequence-number analysis of the recorded packets.
    pub fn sequence(&self) -> SequenceReport {
        SequenceReport::of(self.records.iter().map(|r| r.seq))
    }

    /// Timestamp steps between consecutive packets in sequence order (duplicates removed),
    /// as signed differences in clock units. Negative means time went backwards.
    pub fn timestamp_steps(&self) -> Vec<TimestampStep> {
        let extended = extend_sequence(self.records.iter().map(|r| r.seq));
        let mut by_seq: Vec<(i64, u32)> = extended
            .into_iter()
            .zip(self.records.iter().map(|r| r.timestamp))
            .collect();
        by_seq.sort_by_key(|(seq, _)| *seq);
        by_seq.dedup_by_key(|(seq, _)| *seq);
        by_seq
            .windows(2)
            .map(|w| TimestampStep {
                seq: w[1].0,
                delta: i64::from(w[1].1.wrapping_sub(w[0].1) as i32),
            })
            .collect()
    }

    /// How long after `since` the first keyframe arrived.
    pub fn time_to_first_keyframe(&self, since: Instant) -> Option<Duration> {
        self.first_keyframe_at
            .map(|at| at.saturating_duration_since(since))
    }
}

/// One step between consecutive packets' timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampStep {
    /// The extended sequence number of the later packet.
    pub seq: i64,
    /// Its timestamp minus the previous one's.
    pub delta: i64,
}

/// Sequence numbers unwrapped to i64, each taken as the closest to the previous one.
fn extend_sequence(seqs: impl Iterator<Item = u16>) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for seq in seqs {
        let ext = match out.last() {
            None => i64::from(seq),
            Some(&prev) => prev + i64::from(seq.wrapping_sub(prev as u16) as i16),
        };
        out.push(ext);
    }
    out
}

/// Where consecutive packets (in arrival order) were not one apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discontinuity {
    /// Index, in arrival order, of the later packet.
    pub index: usize,
    /// Sequence number of the earlier packet.
    pub from: u16,
    /// Sequence number of the later packet.
    pub to: u16,
}

impl Discontinuity {
    /// The step, taken as the closest distance modulo 2^16.
    pub fn step(&self) -> i64 {
        i64::from(self.to.wrapping_sub(self.from) as i16)
    }
}

/// What the sequence numbers of one track say about loss, reordering and resets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequenceReport {
    /// Packets received.
    pub received: usize,
    /// Distinct sequence numbers received.
    pub unique: usize,
    /// Packets received more than once (retransmissions).
    pub duplicates: usize,
    /// Sequence numbers between the lowest and highest received that never arrived.
    pub missing: usize,
    /// Every place the arrival order did not step by exactly one.
    pub discontinuities: Vec<Discontinuity>,
}

impl SequenceReport {
    /// Analyses sequence numbers in arrival order.
    pub fn of(seqs: impl Iterator<Item = u16>) -> Self {
        let raw: Vec<u16> = seqs.collect();
        let extended = extend_sequence(raw.iter().copied());
        let discontinuities = raw
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[1] != w[0].wrapping_add(1))
            .map(|(i, w)| Discontinuity {
                index: i + 1,
                from: w[0],
                to: w[1],
            })
            .collect();
        let mut sorted = extended.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let span = match (sorted.first(), sorted.last()) {
            (Some(lo), Some(hi)) => (hi - lo + 1) as usize,
            _ => 0,
        };
        SequenceReport {
            received: raw.len(),
            unique: sorted.len(),
            duplicates: raw.len() - sorted.len(),
            missing: span - sorted.len(),
            discontinuities,
        }
    }

    /// The share of the sequence numbers between the lowest and highest received that never
    /// arrived (0 for a clean stream).
    pub fn lost_fraction(&self) -> f64 {
        let span = self.unique + self.missing;
        if span == 0 {
            0.0
        } else {
            self.missing as f64 / span as f64
        }
    }

    /// Whether what never arrived stays within [`crate::LOSS_BUDGET`].
    pub fn within_loss_budget(&self) -> bool {
        self.lost_fraction() < crate::LOSS_BUDGET
    }

    /// The largest step between consecutive packets, by magnitude (1 for a clean stream).
    pub fn largest_step(&self) -> i64 {
        self.discontinuities
            .iter()
            .map(Discontinuity::step)
            .max_by_key(|s| s.abs())
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(seqs: &[(u16, u32)]) -> TrackLog {
        let mut log = TrackLog::new(MediaKind::Video);
        let at = Instant::now();
        for &(seq, timestamp) in seqs {
            log.push(
                RtpRecord {
                    seq,
                    timestamp,
                    ssrc: 1,
                    marker: false,
                    payload_type: 96,
                    frame_start: false,
                    keyframe_start: false,
                    at,
                },
                true,
            );
        }
        log
    }

    #[test]
    fn clean_stream_across_wrap() {
        let report = log(&[(65534, 0), (65535, 10), (0, 20), (1, 30)]).sequence();
        assert_eq!(report.missing, 0);
        assert!(report.discontinuities.is_empty());
        assert_eq!(report.largest_step(), 1);
    }

    #[test]
    fn gap_retransmission_and_reset() {
        let report = log(&[(10, 0), (12, 0), (11, 0), (12, 0), (40000, 0)]).sequence();
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.discontinuities.len(), 3);
        assert_eq!(report.largest_step(), i64::from(39988u16 as i16));

        let gap = log(&[(10, 0), (13, 0)]).sequence();
        assert_eq!(gap.missing, 2);
    }

    #[test]
    fn timestamps_in_sequence_order() {
        let steps = log(&[(1, 4_294_967_000), (3, 200), (2, 100)]).timestamp_steps();
        assert_eq!(
            steps,
            vec![
                TimestampStep { seq: 2, delta: 396 },
                TimestampStep { seq: 3, delta: 100 }
            ]
        );
    }
}

//! Transport-wide congestion control toward one viewer (send side): every packet the viewer
//! gets carries a transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-
//! extensions-01), the viewer reports when each one arrived (RTCP transport feedback), and the
//! growth of the one-way delay between packet groups says whether its link is filling up before
//! anything is lost — the delay-based half of Google congestion control, as browsers run it
//! toward us when they publish.
//!
//! The detector is libwebrtc's trendline ([`Trendline`]); the acknowledged rate comes from
//! `rtc`'s GCC rate window. Around them is what an SFU needs: a send history that costs nothing per packet (a fixed ring of 8-byte records, the
//! sequence number written from a static table so stamping a packet allocates nothing) and a
//! feedback parser bounded by that ring, so a hostile report cannot make us walk or allocate
//! more than it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{RateCalculator, Usage};
use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
};
use rtc::rtp::Packet;

use crate::trendline::Trendline;

/// The extension's URI, as negotiated in SDP.
pub const TRANSPORT_CC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Lets a connection built on `media_engine` negotiate transport-wide congestion control on
/// audio and video: the header extension and the `transport-cc` RTCP feedback.
pub fn negotiate_transport_cc(
    media_engine: &mut rtc::peer_connection::configuration::media_engine::MediaEngine,
) -> Result<(), rtc::shared::error::Error> {
    use rtc::rtp_transceiver::rtp_sender::{
        RTCPFeedback, RTCRtpHeaderExtensionCapability, RtpCodecKind,
    };
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        media_engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: TRANSPORT_CC_URI.to_owned(),
            },
            kind,
            None,
        )?;
        media_engine.register_feedback(
            RTCPFeedback {
                typ: "transport-cc".to_owned(),
                parameter: String::new(),
            },
            kind,
        );
    }
    Ok(())
}

/// Packets remembered per viewer: at a few hundred packets a second, a couple of seconds;
/// half a second even at 10 Mbit/s — far more than the ~100 ms between a browser's feedback
/// reports. 8 bytes each.
const HISTORY: usize = 512;

/// The feedback's reference time unit.
const REFERENCE_TICK: Duration = Duration::from_millis(64);

/// Every 16-bit sequence number, big-endian, so a packet's extension payload is a slice of
/// static memory rather than an allocation per packet and viewer.
static SEQUENCE_BYTES: [u8; 2 * 65536] = {
    let mut table = [0u8; 2 * 65536];
    let mut seq = 0;
    while seq < 65536 {
        table[2 * seq] = (seq >> 8) as u8;
        table[2 * seq + 1] = seq as u8;
        seq += 1;
    }
    table
};

/// One sent packet: when it left (µs since the history's epoch, wrapping) and its size. A
/// zero size marks a free or already reported slot.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    seq: u16,
    size: u16,
    departure_us: u32,
}

/// What one feedback report says about a viewer's link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Feedback {
    /// The delay trend: the link's queue is growing (`Over`), steady, or draining.
    pub(crate) usage: Usage,
    /// What the viewer acknowledged receiving lately, bits per second.
    pub(crate) received_bps: Option<u64>,
    /// Packets this report covers that we sent, and how many of them never arrived.
    pub(crate) reported: usize,
    pub(crate) lost: usize,
}

/// One viewer's transport-wide sequence numbers, send history and delay estimator.
pub(crate) struct TransportCc {
    /// The viewer's extension id.
    id: u8,
    next_seq: u16,
    epoch: Instant,
    sent: Box<[Sent]>,
    trend: Trendline,
    rate: RateCalculator,
    /// Reused for each report's packets (grown once): when each left, when it arrived (if it
    /// did), its size.
    reports: Vec<(Instant, Option<Duration>, usize)>,
}

impl std::fmt::Debug for TransportCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportCc")
            .field("id", &self.id)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl TransportCc {
    /// Congestion control for a viewer that negotiated the extension as `id`.
    pub(crate) fn new(id: u8, now: Instant) -> Self {
        Self {
            id,
            next_seq: 0,
            epoch: now,
            sent: vec![Sent::default(); HISTORY].into_boxed_slice(),
            trend: Trendline::default(),
            rate: RateCalculator::default(),
            reports: Vec::new(),
        }
    }

    /// The extension id among a viewer's negotiated `(id, uri)` extensions.
    pub(crate) fn negotiated_id(extensions: &[(u8, String)]) -> Option<u8> {
        extensions
            .iter()
            .find(|(id, uri)| *id != 0 && uri == TRANSPORT_CC_URI)
            .map(|(id, _)| *id)
    }

    fn micros(&self, at: Instant) -> u32 {
        at.saturating_duration_since(self.epoch).as_micros() as u32
    }

    /// Numbers `packet` (leaving now) and remembers it.
    pub(crate) fn stamp(&mut self, packet: &mut Packet, size: usize, now: Instant) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let at = 2 * usize::from(seq);
        let payload = Bytes::from_static(&SEQUENCE_BYTES[at..at + 2]);
        if packet.header.set_extension(self.id, payload).is_err() {
            return;
        }
        self.sent[usize::from(seq) % HISTORY] = Sent {
            seq,
            size: size.clamp(1, usize::from(u16::MAX)) as u16,
            departure_us: self.micros(now),
        };
    }

    /// The viewer's transport feedback, received `now`.
    pub(crate) fn on_feedback(&mut self, feedback: &TransportLayerCc, now: Instant) -> Feedback {
        self.collect(feedback, now);
        let mut lost = 0;
        let mut acknowledged = 0;
        for &(departure, arrival, size) in &self.reports {
            match arrival {
                Some(arrival) => {
                    acknowledged += size;
                    self.trend.on_packet(departure, arrival);
                }
                None => lost += 1,
            }
        }
        // One sample per report: every packet of it is acknowledged `now`, so the rate over
        // the window is the same as with a sample per packet, and the window holds a few
        // entries rather than every packet of the last half second.
        if acknowledged > 0 {
            self.rate.add(now, acknowledged);
        }
        Feedback {
            usage: self.trend.usage(),
            received_bps: self.rate.rate_bits_per_second(now).map(|bps| bps as u64),
            reported: self.reports.len(),
            lost,
        }
    }

    /// Joins the feedback's statuses with the send history into `self.reports`, in send order.
    /// Walks at most the report's own packet count and never more than the history holds.
    fn collect(&mut self, feedback: &TransportLayerCc, now: Instant) {
        self.reports.clear();
        let count = usize::from(feedback.packet_status_count).min(HISTORY);
        let mut arrival = REFERENCE_TICK * feedback.reference_time;
        let mut deltas = feedback.recv_deltas.iter();
        let now_us = self.micros(now);
        for (offset, symbol) in symbols(&feedback.packet_chunks).take(count).enumerate() {
            let seq = feedback.base_sequence_number.wrapping_add(offset as u16);
            let arrived_at = match symbol {
                SymbolTypeTcc::PacketNotReceived => None,
                SymbolTypeTcc::PacketReceivedSmallDelta
                | SymbolTypeTcc::PacketReceivedLargeDelta => {
                    let Some(delta) = deltas.next() else {
                        continue;
                    };
                    let magnitude = Duration::from_micros(delta.delta.unsigned_abs());
                    arrival = if delta.delta < 0 {
                        arrival.saturating_sub(magnitude)
                    } else {
                        arrival.saturating_add(magnitude)
                    };
                    Some(arrival)
                }
                // Received, but without a time: nothing to learn about delay or loss.
                SymbolTypeTcc::PacketReceivedWithoutDelta => continue,
            };
            let slot = &mut self.sent[usize::from(seq) % HISTORY];
            if slot.size == 0 || slot.seq != seq {
                continue;
            }
            let sent = std::mem::take(slot);
            let age = Duration::from_micros(u64::from(now_us.wrapping_sub(sent.departure_us)));
            let departure = now.checked_sub(age).unwrap_or(now);
            self.reports
                .push((departure, arrived_at, usize::from(sent.size)));
        }
    }
}

/// The packet statuses of a feedback report's chunks, in order.
fn symbols(chunks: &[PacketStatusChunk]) -> impl Iterator<Item = SymbolTypeTcc> + '_ {
    chunks.iter().flat_map(|chunk| {
        let (run, list) = match chunk {
            PacketStatusChunk::RunLengthChunk(run) => (
                Some((run.packet_status_symbol, usize::from(run.run_length))),
                &[][..],
            ),
            PacketStatusChunk::StatusVectorChunk(vector) => (None, &vector.symbol_list[..]),
        };
        run.into_iter()
            .flat_map(|(symbol, n)| std::iter::repeat_n(symbol, n))
            .chain(list.iter().copied())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock;
    use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
        RecvDelta, RunLengthChunk, StatusChunkTypeTcc,
    };
    use rtc::rtp::header::Header;

    fn packet() -> Packet {
        Packet {
            header: Header {
                version: 2,
                ..Default::default()
            },
            payload: Bytes::from_static(&[0; 1000]),
        }
    }

    /// A feedback report saying packets `base..base + arrivals.len()` arrived at those times
    /// (µs on the viewer's clock), or not at all.
    fn feedback(base: u16, arrivals: &[Option<i64>]) -> TransportLayerCc {
        let mut chunks = Vec::new();
        let mut deltas = Vec::new();
        let mut last = 0i64;
        for arrival in arrivals {
            let symbol = match arrival {
                Some(at) => {
                    deltas.push(RecvDelta {
                        type_tcc_packet: SymbolTypeTcc::PacketReceivedLargeDelta,
                        delta: (at - last) / 250 * 250,
                    });
                    last = *at;
                    SymbolTypeTcc::PacketReceivedLargeDelta
                }
                None => SymbolTypeTcc::PacketNotReceived,
            };
            chunks.push(PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: symbol,
                run_length: 1,
            }));
        }
        TransportLayerCc {
            base_sequence_number: base,
            packet_status_count: arrivals.len() as u16,
            packet_chunks: chunks,
            recv_deltas: deltas,
            ..Default::default()
        }
    }

    #[test]
    fn packets_are_numbered_in_order_without_allocating_a_payload() {
        let t0 = test_clock::start();
        let mut cc = TransportCc::new(5, t0);
        for expected in 0u16..3 {
            let mut p = packet();
            cc.stamp(&mut p, 1012, t0);
            let ext = p.header.get_extension(5).unwrap();
            assert_eq!(u16::from_be_bytes([ext[0], ext[1]]), expected);
        }
        cc.next_seq = u16::MAX;
        let mut p = packet();
        cc.stamp(&mut p, 1012, t0);
        assert_eq!(&p.header.get_extension(5).unwrap()[..], &[0xff, 0xff]);
        assert_eq!(cc.next_seq, 0, "wraps");
    }

    /// Sends `packets` at `interval`, the link delivering them `queue_growth` later each time
    /// (a growing queue) and losing none; returns the last report's verdict.
    fn run(queue_growth_us: i64, rounds: u64) -> Feedback {
        let t0 = test_clock::start();
        let mut cc = TransportCc::new(3, t0);
        let mut verdict = None;
        let interval_us = 10_000i64;
        for round in 0..rounds {
            let base = cc.next_seq;
            let mut arrivals = Vec::new();
            for i in 0..10i64 {
                let n = round as i64 * 10 + i;
                let sent = t0 + Duration::from_micros((n * interval_us) as u64);
                cc.stamp(&mut packet(), 1200, sent);
                arrivals.push(Some(20_000 + n * interval_us + n * queue_growth_us));
            }
            let at = t0 + Duration::from_micros((round + 1) * 100_000 + 30_000);
            verdict = Some(cc.on_feedback(&feedback(base, &arrivals), at));
        }
        verdict.unwrap()
    }

    #[test]
    fn a_steady_link_is_normal_and_a_growing_queue_is_overuse() {
        let steady = run(0, 30);
        assert_eq!(steady.usage, Usage::Normal);
        assert_eq!(steady.lost, 0);
        assert!(
            steady.received_bps.is_some_and(|bps| bps > 500_000),
            "{steady:?}"
        );
        // Each packet 15 ms later than the one before, 10 ms apart: a link carrying 40 % of
        // what is sent, its queue growing.
        assert_eq!(run(15_000, 30).usage, Usage::Over);
    }

    #[test]
    fn lost_packets_are_counted_once_and_unknown_ones_ignored() {
        let t0 = test_clock::start();
        let mut cc = TransportCc::new(3, t0);
        for _ in 0..4 {
            cc.stamp(&mut packet(), 1200, t0);
        }
        let report = feedback(0, &[Some(1_000), None, Some(3_000), None, Some(5_000)]);
        let first = cc.on_feedback(&report, t0 + Duration::from_millis(50));
        // Packet 4 was never sent: not ours to count.
        assert_eq!((first.reported, first.lost), (4, 2));
        // The same report again (a duplicate) says nothing new.
        let again = cc.on_feedback(&report, t0 + Duration::from_millis(60));
        assert_eq!((again.reported, again.lost), (0, 0));
    }

    #[test]
    fn a_hostile_report_walks_no_further_than_its_count_and_the_history() {
        let t0 = test_clock::start();
        let mut cc = TransportCc::new(3, t0);
        cc.stamp(&mut packet(), 1200, t0);
        let report = TransportLayerCc {
            base_sequence_number: 0,
            packet_status_count: u16::MAX,
            packet_chunks: vec![
                PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                    type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                    packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                    run_length: 8191,
                });
                700
            ],
            recv_deltas: Vec::new(),
            ..Default::default()
        };
        let verdict = cc.on_feedback(&report, t0);
        assert_eq!(verdict.reported, 0, "no deltas: no arrival times to use");
        assert!(cc.reports.capacity() <= HISTORY);
    }
}

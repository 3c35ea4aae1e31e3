//! The receive side of transport-wide congestion control, as a browser viewer runs it: note
//! each packet's transport-wide sequence number and arrival time, and every
//! [`FEEDBACK_INTERVAL`] send one RTCP transport feedback report of what arrived (and what did
//! not), so the server under test does the work a browser audience costs it.

use std::time::{Duration, Instant};

use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
    SymbolTypeTcc, TransportLayerCc,
};

pub use directo_sfu::TRANSPORT_CC_URI;

/// How often a viewer reports (Chromium: every 50–100 ms, by rate).
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(100);

/// The most packets one report covers (a report stays well under one MTU).
const MAX_PER_REPORT: usize = 200;

/// The id `sdp` gives the transport-wide sequence number extension, if any.
pub fn negotiated_id(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        let id = id.split('/').next()?;
        (uri.trim() == TRANSPORT_CC_URI)
            .then(|| id.parse().ok())
            .flatten()
    })
}

/// One viewer's arrivals since its last report.
#[derive(Debug)]
pub struct TwccRecorder {
    epoch: Instant,
    arrivals: Vec<(u16, Instant)>,
    reports: u8,
}

impl TwccRecorder {
    /// A recorder whose reference clock starts now.
    pub fn new(now: Instant) -> Self {
        Self {
            epoch: now,
            arrivals: Vec::new(),
            reports: 0,
        }
    }

    /// A packet with transport-wide sequence number `seq` arrived at `at`.
    pub fn record(&mut self, seq: u16, at: Instant) {
        if self.arrivals.len() < 4 * MAX_PER_REPORT {
            self.arrivals.push((seq, at.max(self.epoch)));
        }
    }

    /// The report of everything recorded since the last one, if anything was.
    pub fn report(&mut self, media_ssrc: u32) -> Option<TransportLayerCc> {
        if self.arrivals.is_empty() {
            return None;
        }
        // In sequence order (wrap-aware around the first), duplicates dropped.
        let first = self.arrivals[0].0;
        self.arrivals
            .sort_by_key(|&(seq, _)| seq.wrapping_sub(first).wrapping_add(0x8000));
        self.arrivals.dedup_by_key(|&mut (seq, _)| seq);
        let base = self.arrivals[0].0;
        let mut reference = self.arrivals[0].1.saturating_duration_since(self.epoch);
        reference -= Duration::from_nanos(reference.as_nanos() as u64 % 64_000_000);
        let mut last_us = reference.as_micros() as i64;
        let mut symbols = Vec::new();
        let mut deltas = Vec::new();
        let mut expected = base;
        for &(seq, at) in self.arrivals.iter().take(MAX_PER_REPORT) {
            while expected != seq {
                symbols.push(SymbolTypeTcc::PacketNotReceived);
                expected = expected.wrapping_add(1);
            }
            let arrival_us = at.saturating_duration_since(self.epoch).as_micros() as i64;
            let delta =
                ((arrival_us - last_us) / 250).clamp(i64::from(i16::MIN), i64::from(i16::MAX));
            last_us += delta * 250;
            let symbol = if (0..=255).contains(&delta) {
                SymbolTypeTcc::PacketReceivedSmallDelta
            } else {
                SymbolTypeTcc::PacketReceivedLargeDelta
            };
            symbols.push(symbol);
            deltas.push(RecvDelta {
                type_tcc_packet: symbol,
                delta: delta * 250,
            });
            expected = expected.wrapping_add(1);
        }
        self.arrivals.clear();
        let count = symbols.len() as u16;
        let packet_chunks = symbols
            .chunks(7)
            .map(|chunk| {
                let mut list = chunk.to_vec();
                list.resize(7, SymbolTypeTcc::PacketNotReceived);
                PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                    type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                    symbol_size: SymbolSizeTypeTcc::TwoBit,
                    symbol_list: list,
                })
            })
            .collect();
        self.reports = self.reports.wrapping_add(1);
        Some(TransportLayerCc {
            sender_ssrc: 0,
            media_ssrc,
            base_sequence_number: base,
            packet_status_count: count,
            reference_time: (reference.as_millis() / 64) as u32 & 0x00ff_ffff,
            fb_pkt_count: self.reports,
            packet_chunks,
            recv_deltas: deltas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::marshal::{Marshal, Unmarshal};

    #[test]
    fn finds_the_negotiated_id() {
        let sdp = "v=0\r\na=extmap:2 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n";
        assert_eq!(negotiated_id(sdp), Some(5));
        assert_eq!(negotiated_id("v=0\r\n"), None);
    }

    #[test]
    fn a_report_round_trips_with_its_gaps() {
        let t0 = Instant::now();
        let mut recorder = TwccRecorder::new(t0);
        recorder.record(65_535, t0 + Duration::from_millis(70));
        recorder.record(1, t0 + Duration::from_millis(71));
        recorder.record(2, t0 + Duration::from_millis(140));
        let report = recorder.report(7).unwrap();
        assert_eq!(report.base_sequence_number, 65_535);
        assert_eq!(report.packet_status_count, 4, "65535, 0 (lost), 1, 2");
        assert_eq!(report.recv_deltas.len(), 3);
        let bytes = report.marshal().unwrap();
        let parsed = TransportLayerCc::unmarshal(&mut &bytes[..]).unwrap();
        assert_eq!(parsed.recv_deltas, report.recv_deltas);
        assert!(recorder.report(7).is_none(), "nothing new");
    }
}

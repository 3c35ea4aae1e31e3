//! An interceptor that makes a publisher's RTCP sender reports a little off, the way some
//! stacks (aiortc among them) send them: each report carries the RTP time of the last packet
//! sent rather than its own, and an NTP time off by up to a given error either way.
//!
//! It sits between the `webrtc` crate's sender-report generator and the wire (the write leg
//! walks from the application to the wire), so it sees every RTP packet leave and rewrites
//! every report the generator makes. The errors come from a seeded generator: the same
//! sequence every run.

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Interceptor slot wire-ward of the sender-report generator (11_000) and application-ward
/// of the pacer (3_000), whose queue would otherwise stand between a packet and its report.
pub(crate) const SKEWED_REPORTS_SLOT: usize = 10_500;

/// How a publisher's sender reports are made to be off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkewedReports {
    /// The largest error put on a report's NTP time, either way.
    pub ntp_error: Duration,
    /// Seed of the errors.
    pub seed: u64,
}

/// Rewrites outgoing sender reports as [`SkewedReports`] says.
pub(crate) struct SenderReportSkew {
    skew: SkewedReports,
    rng: u64,
    /// The RTP time of the last packet sent, by SSRC.
    last_rtp: HashMap<u32, u32>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl SenderReportSkew {
    pub(crate) fn new(skew: SkewedReports) -> Self {
        SenderReportSkew {
            skew,
            rng: skew.seed.max(1),
            last_rtp: HashMap::new(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    /// A report's NTP time moved by an error drawn from `[-ntp_error, ntp_error]`.
    fn skewed_ntp(&mut self, ntp: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let max = self.skew.ntp_error.as_micros() as i64;
        let error_us = (self.rng % (2 * max as u64 + 1)) as i64 - max;
        // NTP fractions are 2^-32 s.
        let error = (i128::from(error_us) << 32) / 1_000_000;
        (i128::from(ntp) + error) as u64
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SenderReportSkew {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        match &mut msg.message.packet {
            Packet::Rtp(packet) => {
                self.last_rtp
                    .insert(packet.header.ssrc, packet.header.timestamp);
            }
            Packet::Rtcp(packets) => {
                for packet in packets.iter_mut() {
                    let Some(report) = packet.as_any().downcast_ref::<SenderReport>() else {
                        continue;
                    };
                    let mut report = report.clone();
                    if let Some(&rtp) = self.last_rtp.get(&report.ssrc) {
                        report.rtp_time = rtp;
                    }
                    report.ntp_time = self.skewed_ntp(report.ntp_time);
                    *packet = Box::new(report);
                }
            }
            // The enum is non-exhaustive: whatever else passes untouched.
            _ => {}
        }
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for SenderReportSkew {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

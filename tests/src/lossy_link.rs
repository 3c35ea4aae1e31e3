//! The link into a test client, next to the wire: an interceptor that may drop every n-th
//! inbound VP8 packet before anything else in the client's chain sees it, so its NACK
//! generator asks for it as for a packet lost on the way (retransmissions over RTX carry RTX's
//! payload type and pass), and counts the RTCP sender reports that arrive, which `webrtc`'s
//! statistics do not.

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::peer::VP8_PAYLOAD_TYPE;

/// Where the link sits in the interceptor chain: below every built-in slot, nearest the wire.
pub(crate) const LOSSY_LINK_SLOT: usize = 100;

/// Drops every `every`-th inbound VP8 packet (none if 0), counting the drops in `dropped`, and
/// counts inbound sender reports in `sender_reports`.
pub(crate) struct LossyLink {
    every: u64,
    seen: u64,
    dropped: Arc<AtomicU64>,
    sender_reports: Arc<AtomicU64>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl LossyLink {
    pub(crate) fn new(every: u64, dropped: Arc<AtomicU64>, sender_reports: Arc<AtomicU64>) -> Self {
        LossyLink {
            every,
            seen: 0,
            dropped,
            sender_reports,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for LossyLink {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let reports = packets.iter().filter(|p| p.as_any().is::<SenderReport>());
            self.sender_reports
                .fetch_add(reports.count() as u64, Ordering::Relaxed);
        }
        if let Packet::Rtp(packet) = &msg.message.packet
            && packet.header.payload_type == VP8_PAYLOAD_TYPE
            && self.every > 0
        {
            self.seen += 1;
            if self.seen.is_multiple_of(self.every) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for LossyLink {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

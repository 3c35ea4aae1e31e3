//! The interceptor that lets chosen inbound RTCP reach the application, and the keyframe
//! request (PLI, FIR) helpers every Directo peer needs to read it.
//!
//! `rtc` (and `webrtc`, built on it) ends inbound RTCP at the end of its interceptor chain
//! unless an interceptor marks the packet with [`Attribute::DeliverToApplication`]. The media
//! engine needs viewers' keyframe requests, NACKs and reports and publishers' sender reports;
//! a test or load-generator publisher needs the keyframe requests a browser would answer. So
//! one tap, placed last in the chain at [`RTCP_TAP_SLOT`], marks every compound packet that
//! holds at least one packet its selection wants; the whole compound is delivered (no copy,
//! no allocation per packet) and the application picks what it reads. The rest has been acted
//! on by the interceptors before it and ends there.
//!
//! It lives here because the engine and every Rust client build their connections on the same
//! `rtc` glue, like [`crate::negotiate_transport_cc`].

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// The interceptor slot of the tap: outermost, after every built-in interceptor has seen the
/// packet.
pub const RTCP_TAP_SLOT: usize = 14_000;

/// Which inbound RTCP packets a tap delivers to the application.
pub type RtcpSelection = fn(&dyn rtc::rtcp::Packet) -> bool;

/// Marks the inbound RTCP compounds that hold a packet its selection wants for delivery to the
/// application.
pub struct RtcpTap {
    wanted: RtcpSelection,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl RtcpTap {
    /// A tap that delivers every compound holding a packet for which `wanted` is true.
    pub fn delivering(wanted: RtcpSelection) -> Self {
        RtcpTap {
            wanted,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }
}

/// Whether an RTCP packet asks the sender for a keyframe (PLI or FIR).
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The SSRC a PLI or FIR asks a keyframe of, if `packet` is one.
pub fn keyframe_request_ssrc(packet: &dyn rtc::rtcp::Packet) -> Option<u32> {
    let any = packet.as_any();
    if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
        return Some(pli.media_ssrc);
    }
    any.downcast_ref::<FullIntraRequest>()
        .map(|fir| fir.fir.first().map_or(fir.media_ssrc, |entry| entry.ssrc))
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| (self.wanted)(p.as_ref()))
        {
            msg.message.add(Attribute::DeliverToApplication);
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

    fn close(&mut self) -> Result<(), Self::Error> {
        self.read_queue.clear();
        self.write_queue.clear();
        Ok(())
    }
}

impl Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::TransportContext;

    fn compound(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: crate::test_clock::start(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        }
    }

    fn delivered(tap: &mut RtcpTap, packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> bool {
        tap.handle_read(compound(packets)).expect("read");
        let msg = tap.poll_read().expect("the tap passes every packet on");
        msg.message.has(&Attribute::DeliverToApplication)
    }

    #[test]
    fn a_compound_with_a_keyframe_request_reaches_the_application_and_a_report_alone_does_not() {
        let mut tap = RtcpTap::delivering(is_keyframe_request);
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 0x2222,
        };
        assert_eq!(keyframe_request_ssrc(&pli), Some(0x2222));
        assert!(delivered(
            &mut tap,
            vec![Box::new(ReceiverReport::default()), Box::new(pli)]
        ));
        assert!(!delivered(
            &mut tap,
            vec![Box::new(ReceiverReport::default())]
        ));
        assert_eq!(keyframe_request_ssrc(&ReceiverReport::default()), None);
    }
}

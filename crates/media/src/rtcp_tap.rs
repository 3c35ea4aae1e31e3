//! Which inbound RTCP the media engine acts on, for the tap (`directo_sfu::RtcpTap`) that
//! hands it over from the `rtc` chain.
//!
//! The SFU needs a viewer's keyframe requests and NACKs (answered from the shared cache, or
//! collapsed into one request to the publisher), their receiver reports, REMBs and
//! transport-wide feedback (their bandwidth estimate picks their simulcast layer), and a
//! publisher's sender reports (the NTP↔RTP mapping viewers need for lip sync). Everything else
//! stays inside the chain.

use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

/// Whether the engine acts on `packet`: PLI, FIR, NACK, SR, RR, REMB or transport-wide feedback.
pub(crate) fn engine_rtcp(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    directo_sfu::is_keyframe_request(packet)
        || any.is::<TransportLayerNack>()
        || any.is::<SenderReport>()
        || any.is::<ReceiverReport>()
        || any.is::<ReceiverEstimatedMaximumBitrate>()
        || any.is::<TransportLayerCc>()
}

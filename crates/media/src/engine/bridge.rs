//! The bridge between `rtc` and `directo-sfu`, as free functions: RTCP a peer sent, turned
//! into what the stream's forwarding core acts on; the core's keyframe requests turned into
//! RTCP; a publisher's `rtc` track turned into a [`PublishedTrack`]; a viewer's outgoing track
//! created in `rtc` for a kind and codec.
//!
//! No state of its own: the engine owns the peers and the streams and passes in what a call
//! needs.

use directo_sfu::{Codec, KeyframeRequestKind, MediaKind, PublishedTrack};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use std::time::Instant;

use super::streams::{StreamEntry, kind_name};
use crate::error::MediaError;
use crate::metrics::EngineMetrics;
use crate::peer::{Peer, PeerId, Sender};
use crate::setup::{PeerRole, rtc_codec};

/// RTCP from peer `id` (decrypted, parsed): what the stream and its recording act on.
pub(crate) fn on_rtcp(
    entry: &mut StreamEntry,
    metrics: &EngineMetrics,
    id: PeerId,
    role: PeerRole,
    packets: &[Box<dyn rtc::rtcp::Packet>],
    now: Instant,
) {
    for packet in packets {
        let any = packet.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            if role == PeerRole::Publisher {
                entry.source_sender_report(id, sr.ssrc, sr.ntp_time, sr.rtp_time, now);
            }
        } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            if role == PeerRole::Viewer {
                let mut lost = Vec::new();
                for pair in &nack.nacks {
                    lost.extend(pair.packet_list());
                }
                metrics.nacks.increment(lost.len() as u64);
                entry.sfu.on_nack(id, nack.media_ssrc, &lost, now);
            }
        } else if (any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>())
            && role == PeerRole::Viewer
        {
            entry.sfu.on_keyframe_request(id, now);
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            if role == PeerRole::Viewer {
                for report in &rr.reports {
                    entry
                        .sfu
                        .on_receiver_report(id, report.ssrc, report.fraction_lost, now);
                }
            }
        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>()
            && role == PeerRole::Viewer
        {
            entry.sfu.on_remb(id, remb.bitrate as u64, now);
        } else if let Some(feedback) = any.downcast_ref::<TransportLayerCc>()
            && role == PeerRole::Viewer
        {
            entry.sfu.on_transport_feedback(id, feedback, now);
        }
    }
}

/// The RTCP that asks a publisher for a keyframe of `ssrc`.
pub(crate) fn keyframe_request(
    kind: KeyframeRequestKind,
    ssrc: u32,
    fir_seq: u8,
) -> Box<dyn rtc::rtcp::Packet> {
    match kind {
        KeyframeRequestKind::Pli => Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        }),
        KeyframeRequestKind::Fir => Box::new(FullIntraRequest {
            sender_ssrc: 0,
            media_ssrc: ssrc,
            fir: vec![FirEntry {
                ssrc,
                sequence_number: fir_seq,
            }],
        }),
    }
}

/// Why a publisher's opened track is not forwarded.
pub(crate) enum TrackRefused {
    /// Not audio or video, or the receiver is gone.
    NotMedia,
    /// A codec Directo does not forward (the MIME type).
    Codec(String),
}

/// A publisher's track that `rtc` opened (its first packet arrived), as the forwarding core
/// knows tracks: kind, codec, SSRC, how to ask it for keyframes, its header extensions and
/// simulcast RID.
pub(crate) fn published_track(
    pc: &mut RTCPeerConnection,
    receiver_id: RTCRtpReceiverId,
    ssrc: u32,
    rid: Option<String>,
) -> Result<PublishedTrack, TrackRefused> {
    let mut receiver = pc.rtp_receiver(receiver_id).ok_or(TrackRefused::NotMedia)?;
    let track = receiver.track();
    let kind = match track.kind() {
        RtpCodecKind::Audio => MediaKind::Audio,
        RtpCodecKind::Video => MediaKind::Video,
        _ => return Err(TrackRefused::NotMedia),
    };
    let rtc_codec = track.codec(ssrc).cloned().ok_or(TrackRefused::NotMedia)?;
    let codec = Codec::from_mime(&rtc_codec.mime_type)
        .ok_or_else(|| TrackRefused::Codec(rtc_codec.mime_type.clone()))?;
    let extensions = receiver
        .get_parameters()
        .rtp_parameters
        .header_extensions
        .iter()
        .filter_map(|e| u8::try_from(e.id).ok().map(|i| (i, e.uri.clone())))
        .collect();
    let has = |typ: &str, parameter: &str| {
        rtc_codec
            .rtcp_feedback
            .iter()
            .any(|f| f.typ == typ && f.parameter == parameter)
    };
    let keyframe_request = if !has("nack", "pli") && has("ccm", "fir") {
        KeyframeRequestKind::Fir
    } else {
        KeyframeRequestKind::Pli
    };
    Ok(PublishedTrack {
        kind,
        codec,
        ssrc,
        keyframe_request,
        extensions,
        // Only video has simulcast layers.
        rid: rid.filter(|rid| !rid.is_empty() && kind == MediaKind::Video),
    })
}

/// Add one send-only track of `kind` in `codec` to a viewer's peer connection.
pub(crate) fn add_sender(peer: &mut Peer, kind: MediaKind, codec: Codec) -> Result<(), MediaError> {
    let ssrc = peer.unused_ssrc(&[]);
    // Video resends lost packets and probes over RTX; `rtc` drops it if the viewer does not
    // negotiate RTX.
    let rtx_ssrc = (kind == MediaKind::Video).then(|| peer.unused_ssrc(&[ssrc]));
    let track = MediaStreamTrack::new(
        format!("directo-{}", peer.stream),
        format!("{}-{}", kind_name(kind), peer.session),
        kind_name(kind).to_owned(),
        match kind {
            MediaKind::Audio => RtpCodecKind::Audio,
            MediaKind::Video => RtpCodecKind::Video,
        },
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx: rtx_ssrc.map(|ssrc| RTCRtpRtxParameters { ssrc }),
                ..Default::default()
            },
            codec: rtc_codec(codec),
            active: true,
            ..Default::default()
        }],
    );
    let pc = peer
        .pc
        .as_deref_mut()
        .ok_or_else(|| MediaError::Internal("the connection was released".into()))?;
    let sender = pc.add_track(track)?;
    peer.senders.push(Sender {
        kind,
        id: sender,
        ssrc,
        rtx_ssrc,
    });
    Ok(())
}

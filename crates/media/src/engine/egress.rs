//! What goes out of a stream: the forwarding core's outputs applied — forwarded RTP to each
//! viewer's send leg, sender reports and keyframe requests through the peers' `rtc`
//! connections — and the legs themselves: opened when a viewer connects, moved when its
//! ICE-selected transport changes.

use directo_sfu::{MediaKind, Output};
use rtc::peer_connection::message::RTCMessage;
use rtc::shared::marshal::Marshal;
use signaling_proto::ErrorCode;
use std::time::Instant;

use super::Engine;
use super::bridge;
use crate::fanout::Leg;
use crate::handle::SessionEvent;
use crate::peer::PeerId;
use crate::relay::KeyframeRequest;

impl Engine {
    /// Apply everything the stream's forwarding core emitted.
    pub(super) fn drain_stream(&mut self, stream: &str, now: Instant) {
        let Some(entry) = self.streams.get_mut(stream) else {
            return;
        };
        let mut refused = Vec::new();
        while let Some(output) = entry.sfu.poll_output() {
            match output {
                Output::Rtp {
                    subscriber,
                    packet,
                    kind,
                } => {
                    self.metrics.packets_out.increment(1);
                    if kind == MediaKind::Video
                        && let Some(peer) = self.peers.get_mut(subscriber)
                        && !peer.joined
                    {
                        // Join time: WHEP/WS offer to the first video packet (a keyframe).
                        peer.joined = true;
                        self.metrics
                            .join_seconds
                            .record(now.duration_since(peer.created).as_secs_f64());
                    }
                    self.fanout.push(subscriber, packet);
                }
                Output::SenderReport { subscriber, report } => {
                    if self.peers.get(subscriber).is_some_and(|p| p.pc.is_none()) {
                        // A released viewer's reports go through its leg.
                        if let Ok(packet) = report.marshal() {
                            self.fanout.push_rtcp(subscriber, packet.freeze());
                        }
                        continue;
                    }
                    let message = RTCMessage::RtcpPacket(String::new(), vec![Box::new(report)]);
                    self.peers.write(subscriber, now, message);
                }
                Output::KeyframeRequest {
                    publisher,
                    ssrc,
                    kind,
                    fir_seq,
                } => {
                    tracing::debug!(ssrc, ?kind, "keyframe request to publisher");
                    self.metrics.keyframe_requests.increment(1);
                    let request = KeyframeRequest { ssrc, kind };
                    if self.relays.request_keyframe(publisher, request) {
                        continue;
                    }
                    let packet = bridge::keyframe_request(kind, ssrc, fir_seq);
                    let message = RTCMessage::RtcpPacket(String::new(), vec![packet]);
                    self.peers.write(publisher, now, message);
                }
                Output::CodecMismatch { subscriber, codec } => {
                    if let Some(peer) = self.peers.get(subscriber) {
                        let message = format!(
                            "this stream is sent as {}, which your client did not offer to receive",
                            codec.mime_type()
                        );
                        tracing::info!(session = %peer.session, %message, "viewer cannot decode the stream");
                        let event = SessionEvent::Error {
                            code: ErrorCode::UnsupportedCodec,
                            message,
                        };
                        if !peer.notify(event) {
                            refused.push(subscriber);
                        }
                    }
                }
            }
        }
        self.fanout.dispatch();
        for id in refused {
            self.remove_peer(id, now);
        }
    }

    /// Give a connected viewer its send leg: from now on its forwarded RTP is protected by
    /// that leg's context alone. `false` if its connection has no selected transport or no
    /// send context to hand over.
    pub(super) fn open_leg(&mut self, id: PeerId) -> bool {
        let Some(peer) = self.peers.get_mut(id) else {
            return false;
        };
        let Some(pc) = peer.pc.as_deref_mut() else {
            return false;
        };
        let Some(transport) = pc.selected_transport() else {
            return false;
        };
        let Some(srtp) = pc.take_send_srtp_context() else {
            return false;
        };
        peer.sending_to = Some(transport);
        let destination = self.transport.destination(&transport);
        self.fanout.add(id, Leg::new(srtp, destination));
        true
    }

    /// Follow viewers whose ICE-selected transport changed (a new network, a nominated pair,
    /// UDP to ICE-TCP or back): the same leg sends there.
    pub(super) fn retarget_legs(&mut self) {
        let moved: Vec<(PeerId, rtc::shared::TransportContext)> = self
            .peers
            .iter()
            .filter_map(|(id, peer)| {
                let current = peer.sending_to?;
                // A released viewer moves on its nominations instead (`release.rs`).
                let selected = peer.pc.as_ref()?.selected_transport()?;
                (selected != current).then_some((id, selected))
            })
            .collect();
        for (id, transport) in moved {
            let destination = self.transport.destination(&transport);
            // Nowhere to send yet (its ICE-TCP connection is not known): asked again at the
            // next sweep, the leg holding its packets back meanwhile.
            let settled = !matches!(destination, crate::fanout::Destination::Unreachable);
            if let Some(peer) = self.peers.get_mut(id)
                && settled
            {
                tracing::debug!(session = %peer.session, to = %transport.peer_addr, protocol = ?transport.transport_protocol, "viewer's transport moved");
                peer.sending_to = Some(transport);
            }
            self.fanout.retarget(id, destination);
        }
    }
}

//! A connected viewer's RTCP, read by the engine itself.
//!
//! A browser audience talks back: every viewer sends transport-wide feedback about ten times a
//! second, receiver reports, and NACKs and keyframe requests when it needs them. Through the
//! viewer's `rtc` connection each of those datagrams would cross the whole read pipeline
//! (demultiplexing, ICE, DTLS, SRTP, the interceptor chain, the event queue, a processing
//! pass of the peer) only to reach the stream's forwarding core. Once the viewer is connected
//! its receive SRTP context is taken from the connection (`vendor/rtc`'s patch) and kept on
//! the peer: `ingress.rs` hands its SRTCP here, to be unprotected (authenticated,
//! replay-checked) and parsed and go straight to the stream, which the next flush drains once.
//! STUN, DTLS and chat (SCTP) still go to the connection, which keeps ICE and the data channel
//! alive; before the viewer is connected its RTCP goes through the connection as before.

use rtc::srtp::context::Context;
use std::time::Instant;

use super::bridge;
use super::{Engine, note_fed};
use crate::peer::PeerId;
use crate::setup::PeerRole;

/// Unprotects (authenticates, replay-checks) and parses one SRTCP datagram.
pub(super) fn read_rtcp(
    context: &mut Context,
    datagram: &[u8],
) -> Result<Vec<Box<dyn rtc::rtcp::Packet>>, rtc::shared::error::Error> {
    let mut plain = context.decrypt_rtcp(datagram)?;
    rtc::rtcp::packet::unmarshal(&mut plain)
}

impl Engine {
    /// What viewer `id`'s RTCP datagram `read` to: its stream acts on it, and is drained in
    /// the flush that follows the batch.
    pub(super) fn on_viewer_rtcp(
        &mut self,
        id: PeerId,
        read: Result<Vec<Box<dyn rtc::rtcp::Packet>>, rtc::shared::error::Error>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let packets = match read {
            Ok(packets) => packets,
            Err(e) => {
                tracing::debug!(session = %peer.session, error = %e, "viewer RTCP rejected");
                self.metrics.viewer_rtcp_rejected.increment(1);
                return;
            }
        };
        self.metrics.viewer_rtcp.increment(1);
        // Its first: it has its keys, so its handshake is over on both sides. It may start
        // on the cached keyframe now, and the next pass may release its connection.
        let first = !std::mem::replace(&mut peer.rtcp_read, true);
        let Some(entry) = self.streams.get_mut(&peer.stream) else {
            return;
        };
        if first && entry.sfu.start_from_cache(id, now) {
            self.metrics.cached_starts.increment(1);
        }
        bridge::on_rtcp(entry, &self.metrics, id, PeerRole::Viewer, &packets, now);
        note_fed(&mut self.fed, &peer.stream);
        if first {
            self.peers.mark_dirty(id);
        }
    }
}

/// Whether a datagram is (S)RTCP: an RTP version-2 first byte and a packet type of 192–223
/// (RFC 5761 and RFC 7983).
pub(super) fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && (192..=223).contains(&datagram[1])
}

#[cfg(test)]
mod tests {
    use super::is_rtcp;

    #[test]
    fn tells_rtcp_from_rtp_stun_and_dtls() {
        // A receiver report and a transport-wide feedback (RTPFB, 205) header.
        assert!(is_rtcp(&[0x81, 201, 0, 7, 0, 0, 0, 1]));
        assert!(is_rtcp(&[0x8f, 205, 0, 5, 0, 0, 0, 1]));
        // RTP with payload type 96 (marker set or not).
        assert!(!is_rtcp(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 96 | 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
        // STUN (first byte 0–3) and DTLS (20–63), and a runt.
        assert!(!is_rtcp(&[0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42]));
        assert!(!is_rtcp(&[22, 254, 253, 0, 0, 0, 0, 0]));
        assert!(!is_rtcp(&[0x81, 201]));
    }
}

//! Directo patch (the only change to rtc 0.21.1 in this vendored copy): lets an application
//! protect RTP it sends outside the connection's handler pipeline, with its own SRTP context,
//! on its own thread, straight to the ICE-selected address — and, for the load generator's
//! viewers, unprotect RTP the same way; and lets it keep protecting RTCP once it has dropped
//! the connection.

use crate::peer_connection::RTCPeerConnection;
use shared::TransportContext;

impl RTCPeerConnection {
    /// Takes, once, a send-only SRTP context derived from the DTLS handshake's keying material
    /// (the same keys as the connection's own local context). `None` before the handshake
    /// completes or after it was taken.
    ///
    /// The caller must only protect RTP of SSRCs this connection never sends itself (each SSRC
    /// keeps its own rollover state per context, and the connection's context still protects
    /// all RTCP), so no SRTP nonce is ever used twice under the key.
    pub fn take_send_srtp_context(&mut self) -> Option<srtp::context::Context> {
        self.dtls_transport_mut().send_srtp_context.take()
    }

    /// Takes, once, a receive SRTP context (with replay protection) derived from the DTLS
    /// handshake, for an application that reads RTP off its socket without the handler
    /// pipeline (RTCP and everything else still go to `handle_read`).
    pub fn take_recv_srtp_context(&mut self) -> Option<srtp::context::Context> {
        self.dtls_transport_mut().recv_srtp_context.take()
    }

    /// Takes the connection's own local SRTP context, the one that protected every RTCP packet
    /// it sent, so an application that releases the connection after setup can go on sending
    /// RTCP under the same SRTCP indices (a fresh context would start them again, reusing
    /// nonces). The connection protects nothing after this: take it only to drop the
    /// connection.
    pub fn take_rtcp_send_context(&mut self) -> Option<srtp::context::Context> {
        self.pipeline_context
            .srtp_handler_context
            .local_srtp_context
            .take()
    }

    /// Where the connection's own writes go now: the ICE-selected candidate pair as a transport
    /// (local base address, remote address, protocol), as the ICE handler stamps them.
    pub fn selected_transport(&self) -> Option<TransportContext> {
        let (local, remote) = self.ice_transport().agent.get_selected_candidate_pair()?;
        Some(TransportContext {
            local_addr: local.base_addr(),
            peer_addr: remote.addr(),
            ecn: None,
            transport_protocol: local.network_type().to_protocol(),
        })
    }
}

//! One peer connection the engine drives: a publisher or a viewer of one stream.

use directo_sfu::{Codec, DownTrackConfig, MediaKind, PublishedTrack, Quality};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::shared::TransportContext;
use std::time::Instant;

use crate::chat_port::Identity;
use crate::setup::PeerRole;
use rtc::data_channel::RTCDataChannelId;

/// The engine's id for a peer; also the id `directo-sfu` knows it by.
pub(crate) type PeerId = directo_sfu::PeerId;

/// One of a viewer's outgoing tracks.
pub(crate) struct Sender {
    pub(crate) kind: MediaKind,
    pub(crate) id: RTCRtpSenderId,
    pub(crate) ssrc: u32,
}

/// A peer connection and what the engine knows about it.
pub(crate) struct Peer {
    pub(crate) session: String,
    pub(crate) stream: String,
    pub(crate) role: PeerRole,
    pub(crate) ufrag: String,
    pub(crate) pc: RTCPeerConnection,
    pub(crate) created: Instant,
    pub(crate) last_rx: Instant,
    pub(crate) connected: bool,
    /// Set once the peer is gone; it is removed at the end of the current pass.
    pub(crate) closing: bool,
    /// The deadline the timer heap holds for this peer.
    pub(crate) timeout: Option<Instant>,
    /// Whether the peer is queued for a processing pass.
    pub(crate) dirty: bool,
    /// Publisher: the tracks opened so far.
    pub(crate) published: Vec<PublishedTrack>,
    /// Publisher: how many tracks its offer announced.
    pub(crate) expected_tracks: usize,
    /// Publisher: when to go live with the tracks opened so far.
    pub(crate) live_deadline: Option<Instant>,
    /// Viewer: whether its first video packet (a keyframe) was sent.
    pub(crate) joined: bool,
    /// Who the peer said it is.
    pub(crate) identity: Identity,
    /// The peer's open `chat` data channel.
    pub(crate) chat_channel: Option<RTCDataChannelId>,
    /// Viewer: one sender per kind offered.
    pub(crate) senders: Vec<Sender>,
    /// Viewer: the transport its send leg uses (see `fanout`), once it has one.
    pub(crate) sending_to: Option<TransportContext>,
    /// Viewer: the simulcast layer it asked for.
    pub(crate) quality: Quality,
}

impl Peer {
    /// The viewer's down-track configuration, read from what its answer negotiated.
    pub(crate) fn down_tracks(&mut self) -> Vec<DownTrackConfig> {
        let mut tracks = Vec::with_capacity(self.senders.len());
        for sender in &self.senders {
            let Some(mut rtp_sender) = self.pc.rtp_sender(sender.id) else {
                continue;
            };
            let params = &rtp_sender.get_parameters().rtp_parameters;
            let payload_types = params
                .codecs
                .iter()
                .filter_map(|c| {
                    Codec::from_mime(&c.rtp_codec.mime_type).map(|k| (k, c.payload_type))
                })
                .collect();
            let extensions = params
                .header_extensions
                .iter()
                .filter_map(|e| u8::try_from(e.id).ok().map(|id| (id, e.uri.clone())))
                .collect();
            tracks.push(DownTrackConfig {
                kind: sender.kind,
                ssrc: sender.ssrc,
                payload_types,
                extensions,
                quality: self.quality,
                rtx: None,
            });
        }
        tracks
    }
}

//! A stream fed from another node of a cluster: the handle a relay (the server's WHEP pull
//! from the stream's origin) uses to be this engine's publisher of that stream.
//!
//! The engine treats a relay like a local publisher that has no peer connection here: its
//! tracks go live in the stream's forwarding core, its RTP and sender reports are fed to it
//! (recording follows the recording policy, which in a cluster says "origin only"), and the
//! core's keyframe requests — already collapsed and throttled over every local viewer — come
//! back on [`RelayFeed::keyframe_requests`] for the relay to send upstream. NACKs of local
//! viewers are answered from the local core's cache; the relay's own connection asks upstream
//! for what it lost.
//!
//! The relay ends with [`RelaySink::end`], or when its [`KeyframeRequests`] are dropped (the
//! engine notices at its next sweep): the stream goes offline here and its viewers stay
//! connected, continuing when the next relay or publisher of the stream goes live.

use directo_sfu::{KeyframeRequestKind, PublishedTrack};
use tokio::sync::mpsc;

use crate::peer::PeerId;

/// Keyframe requests queued for one relay before more are dropped (they repeat anyway).
pub(crate) const KEYFRAME_REQUEST_QUEUE: usize = 16;
/// Messages from every relay to the engine queued before a relay waits.
pub(crate) const RELAY_QUEUE: usize = 4096;

/// What a relay tells the engine.
pub(crate) enum RelayIn {
    /// The stream's tracks (every simulcast layer one track with its RID): the stream goes
    /// live, or its tracks change.
    Tracks(Vec<PublishedTrack>),
    /// One RTP packet of one of those tracks (by SSRC), decrypted.
    Rtp(rtc::rtp::packet::Packet),
    /// A sender report of one of those tracks.
    SenderReport {
        ssrc: u32,
        ntp_time: u64,
        rtp_time: u32,
    },
    /// The relay is over.
    Ended,
}

/// A keyframe request for the relay to send upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeRequest {
    /// The SSRC of the relay's track that needs a keyframe.
    pub ssrc: u32,
    /// PLI or FIR.
    pub kind: KeyframeRequestKind,
}

/// The sending half of a relay: cloneable, one per upstream leg.
#[derive(Clone)]
pub struct RelaySink {
    pub(crate) id: PeerId,
    pub(crate) to_engine: mpsc::Sender<(PeerId, RelayIn)>,
}

impl RelaySink {
    async fn send(&self, message: RelayIn) -> bool {
        self.to_engine.send((self.id, message)).await.is_ok()
    }

    /// Sets the stream's tracks. `false` once the engine is gone.
    pub async fn set_tracks(&self, tracks: Vec<PublishedTrack>) -> bool {
        self.send(RelayIn::Tracks(tracks)).await
    }

    /// Feeds one RTP packet. `false` once the engine is gone.
    pub async fn rtp(&self, packet: rtc::rtp::packet::Packet) -> bool {
        self.send(RelayIn::Rtp(packet)).await
    }

    /// Feeds one sender report. `false` once the engine is gone.
    pub async fn sender_report(&self, ssrc: u32, ntp_time: u64, rtp_time: u32) -> bool {
        self.send(RelayIn::SenderReport {
            ssrc,
            ntp_time,
            rtp_time,
        })
        .await
    }

    /// Ends the relay now: the stream goes offline here (its viewers stay).
    pub async fn end(&self) {
        self.send(RelayIn::Ended).await;
    }
}

/// The keyframe requests the engine sends a relay. Dropping it ends the relay.
pub struct KeyframeRequests {
    pub(crate) rx: mpsc::Receiver<KeyframeRequest>,
}

impl KeyframeRequests {
    /// The next request; `None` once the engine let the relay go.
    pub async fn next(&mut self) -> Option<KeyframeRequest> {
        self.rx.recv().await
    }
}

/// A relay of one stream into this engine, as [`crate::EngineHandle::open_relay`] returns it.
pub struct RelayFeed {
    /// Where the relay's media goes.
    pub sink: RelaySink,
    /// What the local viewers ask of the upstream.
    pub keyframe_requests: KeyframeRequests,
}

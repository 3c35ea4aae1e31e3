//! Streams fed by relays from other nodes: each relay is its stream's publisher here, with no
//! peer connection in this engine (its connection to the upstream node is the server's WHEP
//! pull). The relay table, and the flows that feed a relay's media into the stream and send
//! the stream's keyframe requests back to it.

use directo_sfu::PublishedTrack;
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::mpsc;

use super::{Engine, note_fed};
use crate::error::MediaError;
use crate::handle::EngineEvent;
use crate::peer::PeerId;
use crate::relay::{
    KEYFRAME_REQUEST_QUEUE, KeyframeRequest, KeyframeRequests, RelayFeed, RelayIn, RelaySink,
};

/// One relay feeding a stream.
pub(crate) struct Relay {
    pub(crate) stream: String,
    /// Its tracks, once it said them.
    pub(crate) tracks: Vec<PublishedTrack>,
    requests: mpsc::Sender<KeyframeRequest>,
}

/// Every relay feeding a stream here, by the id it publishes under.
pub(crate) struct Relays {
    relays: HashMap<PeerId, Relay>,
    /// Cloned into each relay's sink.
    to_engine: mpsc::Sender<(PeerId, RelayIn)>,
}

impl Relays {
    pub(crate) fn new(to_engine: mpsc::Sender<(PeerId, RelayIn)>) -> Self {
        Relays {
            relays: HashMap::new(),
            to_engine,
        }
    }

    pub(crate) fn get(&self, id: PeerId) -> Option<&Relay> {
        self.relays.get(&id)
    }

    pub(crate) fn len(&self) -> usize {
        self.relays.len()
    }

    /// Hands a keyframe request to relay `id`; `false` if `id` is no relay. A full queue
    /// drops the request (the stream asks again if the keyframe does not come).
    pub(crate) fn request_keyframe(&self, id: PeerId, request: KeyframeRequest) -> bool {
        match self.relays.get(&id) {
            Some(relay) => {
                let _ = relay.requests.try_send(request);
                true
            }
            None => false,
        }
    }

    /// Relays whose owner dropped its keyframe requests (the pull ended without saying so).
    fn abandoned(&self) -> Vec<PeerId> {
        self.relays
            .iter()
            .filter(|(_, relay)| relay.requests.is_closed())
            .map(|(id, _)| *id)
            .collect()
    }
}

impl Engine {
    /// A relay becomes the publisher of `stream` here. A live local publisher keeps the
    /// stream (`StreamBusy`); an earlier relay of it is replaced.
    pub(super) fn open_relay(
        &mut self,
        stream: String,
        now: Instant,
    ) -> Result<RelayFeed, MediaError> {
        if self.shutting_down {
            return Err(MediaError::Unavailable);
        }
        if let Some(old) = self.streams.get(&stream).and_then(|e| e.publisher) {
            if self.peers.get(old).is_some() {
                return Err(MediaError::StreamBusy(stream));
            }
            self.end_relay(old, now);
        }
        let id = self.peers.next_id();
        let (requests, rx) = mpsc::channel(KEYFRAME_REQUEST_QUEUE);
        self.relays.relays.insert(
            id,
            Relay {
                stream: stream.clone(),
                tracks: Vec::new(),
                requests,
            },
        );
        let entry = self.streams.entry(&stream);
        entry.publisher = Some(id);
        entry.relayed = true;
        self.board.changed();
        tracing::info!(%stream, "a relay feeds the stream here");
        Ok(RelayFeed {
            sink: RelaySink {
                id,
                to_engine: self.relays.to_engine.clone(),
            },
            keyframe_requests: KeyframeRequests { rx },
        })
    }

    /// What relay `id` sent. A stream fed RTP is noted as fed and drained in the flush
    /// that follows the batch: the forwarding core's outputs go out once per batch, and the
    /// per-packet path copies nothing.
    pub(super) fn on_relay(&mut self, id: PeerId, message: RelayIn, now: Instant) {
        if let RelayIn::Rtp(packet) = message {
            let Some(relay) = self.relays.relays.get(&id) else {
                return;
            };
            let Some(entry) = self.streams.get_mut(&relay.stream) else {
                return;
            };
            if entry.publisher != Some(id) || !entry.live_announced {
                return;
            }
            entry.source_rtp(&self.metrics, id, packet, now);
            note_fed(&mut self.fed, &relay.stream);
            return;
        }
        let Some(relay) = self.relays.relays.get_mut(&id) else {
            return;
        };
        let stream = relay.stream.clone();
        match message {
            RelayIn::Tracks(tracks) => {
                relay.tracks = tracks.clone();
                self.start_stream(&stream, id, tracks, now);
            }
            RelayIn::Rtp(_) => {}
            RelayIn::SenderReport {
                ssrc,
                ntp_time,
                rtp_time,
            } => {
                if let Some(entry) = self.streams.get_mut(&stream)
                    && entry.publisher == Some(id)
                {
                    entry.source_sender_report(id, ssrc, ntp_time, rtp_time, now);
                }
            }
            RelayIn::Ended => self.end_relay(id, now),
        }
    }

    /// Relay `id` is over: its stream goes offline here; its viewers stay for what comes next.
    pub(super) fn end_relay(&mut self, id: PeerId, now: Instant) {
        let Some(relay) = self.relays.relays.remove(&id) else {
            return;
        };
        let stream = relay.stream;
        tracing::info!(%stream, "the relay of the stream ended");
        if let Some(entry) = self.streams.get_mut(&stream)
            && entry.publisher == Some(id)
        {
            entry.publisher = None;
            entry.relayed = false;
            entry.sfu.remove_publisher(id, now);
            if let Some(recording) = &mut entry.recording {
                recording.idle_since = Some(now);
            }
            if entry.live_announced {
                entry.live_announced = false;
                let _ = self.events.send(EngineEvent::Offline {
                    stream: stream.clone(),
                });
            }
        }
        self.streams.remove_if_idle(&stream);
        self.board.changed();
    }

    /// Ends the relays whose owner went away without a word.
    pub(super) fn sweep_relays(&mut self, now: Instant) {
        for id in self.relays.abandoned() {
            self.end_relay(id, now);
        }
    }
}

//! What the HTTP side asks the engine (through [`crate::EngineHandle`]): create, change and
//! end sessions, list a stream's sessions and audience, end a stream, apply a recording
//! policy change, shut down. Stream status is not asked here: it is read off the board.

use std::time::Instant;

use super::Engine;
use crate::error::MediaError;
use crate::handle::{Command, SessionInfo};
use crate::setup::PeerRole;

impl Engine {
    /// Carry out one command; `true` when the engine is to stop.
    pub(super) fn on_command(&mut self, cmd: Command) -> bool {
        let now = Instant::now();
        match cmd {
            Command::Publish {
                stream,
                offer,
                identity,
                reply,
            } => {
                let result = self.publish(stream, &offer, identity, now);
                self.board.publish_changes(&self.streams, now);
                let _ = reply.send(result);
            }
            Command::Watch {
                stream,
                offer,
                identity,
                quality,
                reply,
            } => {
                let result = self.watch(stream, &offer, identity, quality, now);
                self.board.publish_changes(&self.streams, now);
                let _ = reply.send(result);
            }
            Command::OpenRelay { stream, reply } => {
                let result = self.open_relay(stream, now);
                self.board.publish_changes(&self.streams, now);
                let _ = reply.send(result);
            }
            Command::SetQuality {
                session,
                quality,
                reply,
            } => {
                let result = match self.peers.id_of(&session) {
                    Some(id) => {
                        let stream = self.peers.get_mut(id).map(|peer| {
                            peer.quality = quality;
                            peer.stream.clone()
                        });
                        if let Some(stream) = stream
                            && let Some(entry) = self.streams.get_mut(&stream)
                        {
                            entry.sfu.set_quality(id, quality, now);
                            self.drain_stream(&stream, now);
                        }
                        Ok(())
                    }
                    None => Err(MediaError::SessionNotFound(session)),
                };
                let _ = reply.send(result);
            }
            Command::Close {
                session,
                deliberate,
                reply,
            } => {
                let result = match self.peers.id_of(&session) {
                    Some(id) => {
                        let (stream, role) = self
                            .peers
                            .get(id)
                            .map_or((String::new(), PeerRole::Viewer), |p| {
                                (p.stream.clone(), p.role)
                            });
                        self.remove_peer(id, now);
                        // The presenter pressed Stop: the file gets its Cues and Duration now
                        // rather than after the grace a lost connection gets.
                        if deliberate
                            && role == PeerRole::Publisher
                            && self
                                .streams
                                .get(&stream)
                                .is_some_and(|e| e.publisher.is_none())
                        {
                            self.streams.finish_recording(&stream);
                            self.board.changed();
                        }
                        Ok(stream)
                    }
                    None => Err(MediaError::SessionNotFound(session)),
                };
                self.board.publish_changes(&self.streams, now);
                let _ = reply.send(result);
            }
            Command::Audience { stream, reply } => {
                let _ = reply.send(self.analytics.stats(&stream, now));
            }
            Command::Sessions { stream, reply } => {
                let sessions = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.stream == stream && !p.closing)
                    .map(|(_, p)| SessionInfo {
                        session: p.session.clone(),
                        role: match p.role {
                            PeerRole::Publisher => signaling_proto::Role::Publisher,
                            PeerRole::Viewer => signaling_proto::Role::Viewer,
                        },
                        name: p.identity.name.clone(),
                        moderator: p.identity.moderator,
                        connected: p.connected,
                        seconds: now.duration_since(p.created).as_secs_f64(),
                    })
                    .collect();
                let _ = reply.send(sessions);
            }
            Command::EndStream { stream, reply } => {
                let ids = self.peers.select(|p| p.stream == stream);
                // Other nodes' relay pulls go too, but they are no one's session.
                let count = ids
                    .iter()
                    .filter(|id| self.peers.get(**id).is_some_and(|p| !p.identity.relay))
                    .count();
                for id in ids {
                    self.remove_peer(id, now);
                }
                self.board.publish_changes(&self.streams, now);
                let _ = reply.send(count);
            }
            Command::Answer {
                session,
                sdp,
                reply,
            } => {
                let _ = reply.send(self.apply_answer(&session, sdp, now));
            }
            Command::ApplyRecording { stream, reply } => {
                let tracks = self
                    .streams
                    .get(&stream)
                    .and_then(|e| e.publisher)
                    .and_then(|p| self.peers.get(p))
                    .map(|p| p.published.clone())
                    .unwrap_or_default();
                self.streams.apply_policy(&stream, &tracks, now);
                self.board.changed();
                self.board.publish_changes(&self.streams, now);
                let _ = reply.send(());
            }
            Command::Shutdown { reply } => {
                self.close_all();
                self.shutting_down = true;
                // Finish every recording (Cues, Duration) before saying we are done.
                self.streams.finish_all();
                let _ = reply.send(());
                return true;
            }
        }
        false
    }
}

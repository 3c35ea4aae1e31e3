//! The viewers of a stream: each one's down tracks (at most one per kind) and its
//! transport-wide congestion control, in a table the packet path walks in order and the
//! control path (NACK, PLI, reports, removal) looks up by id.

use std::collections::{HashMap, VecDeque};
use std::ops::{Index, IndexMut};
use std::time::Instant;

use rtc::rtp::Packet;

use crate::codec::MediaKind;
use crate::down_track::{DownTrack, DownTrackConfig};
use crate::track::PublishedTrack;
use crate::twcc::TransportCc;
use crate::vp8::Descriptor;

use super::{Output, PeerId};

/// Bytes a forwarded packet carries besides its payload (RTP header, extensions, SRTP tag),
/// roughly, for the transport-wide send history.
pub(super) const RTP_OVERHEAD: usize = 40;

/// One viewer and its down tracks (at most one per kind).
#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) id: PeerId,
    pub(super) audio: Option<DownTrack>,
    pub(super) video: Option<DownTrack>,
    /// Transport-wide congestion control, when the viewer negotiated it.
    pub(super) twcc: Option<TransportCc>,
}

impl Subscriber {
    /// A viewer with its down tracks (a second track of a kind is ignored); the tracks of
    /// `previous` (the same viewer, replaced) continue their numbering in the new ones.
    pub(super) fn new(
        id: PeerId,
        tracks: Vec<DownTrackConfig>,
        mut previous: Option<Subscriber>,
        now: Instant,
    ) -> Self {
        let twcc = tracks
            .iter()
            .find_map(|config| TransportCc::negotiated_id(&config.extensions))
            .map(|id| TransportCc::new(id, now));
        let mut entry = Subscriber {
            id,
            audio: None,
            video: None,
            twcc,
        };
        for config in tracks {
            let slot = match config.kind {
                MediaKind::Audio => &mut entry.audio,
                MediaKind::Video => &mut entry.video,
            };
            if slot.is_some() {
                tracing::warn!(
                    subscriber = id,
                    ?config,
                    "ignoring a second down track of the same kind"
                );
                continue;
            }
            let kind = config.kind;
            let mut down_track = DownTrack::new(config);
            if let Some(old) = previous.as_mut().and_then(|old| old.take_track(kind)) {
                down_track.continue_from(old);
            }
            *slot = Some(down_track);
        }
        entry
    }

    pub(super) fn track_mut(&mut self, kind: MediaKind) -> Option<&mut DownTrack> {
        match kind {
            MediaKind::Audio => self.audio.as_mut(),
            MediaKind::Video => self.video.as_mut(),
        }
    }

    pub(super) fn tracks_mut(&mut self) -> impl Iterator<Item = &mut DownTrack> {
        self.audio.iter_mut().chain(self.video.iter_mut())
    }

    fn take_track(&mut self, kind: MediaKind) -> Option<DownTrack> {
        match kind {
            MediaKind::Audio => self.audio.take(),
            MediaKind::Video => self.video.take(),
        }
    }

    /// Forwards one packet of the stream's track `index` (`track`) to this viewer, if it is
    /// for it: rewritten by its down track of that kind, stamped, queued in `outputs`. Returns
    /// whether the viewer started or switched layers with it (who waits for what changed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &mut self,
        index: usize,
        track: &PublishedTrack,
        compacted: u64,
        packet: &Packet,
        can_start: bool,
        descriptor: Option<&Descriptor>,
        now: Instant,
        outputs: &mut VecDeque<Output>,
    ) -> Option<bool> {
        let kind = track.kind;
        let down_track = self.track_mut(kind)?;
        if down_track.layer != Some(index) {
            // Another layer's packet: for this viewer only if it switches here.
            if !(can_start && down_track.target == Some(index)) {
                return None;
            }
            down_track.bind(Some((index, track)));
        }
        let was_waiting = kind == MediaKind::Video && down_track.is_waiting();
        let mut out = down_track.forward(compacted, packet, can_start, descriptor, now)?;
        Self::stamp(&mut self.twcc, &mut out, now);
        outputs.push_back(Output::Rtp {
            subscriber: self.id,
            kind,
            packet: out,
        });
        Some(was_waiting)
    }

    /// Gives a packet leaving for this viewer its transport-wide sequence number.
    pub(super) fn stamp(twcc: &mut Option<TransportCc>, packet: &mut Packet, now: Instant) {
        if let Some(twcc) = twcc {
            twcc.stamp(packet, packet.payload.len() + RTP_OVERHEAD, now);
        }
    }
}

/// Every viewer, by position (the packet path walks them in order) and by id.
#[derive(Debug, Default)]
pub(super) struct Subscribers {
    list: Vec<Subscriber>,
    /// Subscriber id -> index in `list`, for control-path lookups (NACK, PLI, removal).
    index: HashMap<PeerId, usize>,
}

impl Subscribers {
    /// Where the viewer `id` is.
    pub(super) fn position(&self, id: PeerId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// Adds a viewer (not in the table yet) at the end; returns its position.
    pub(super) fn push(&mut self, entry: Subscriber) -> usize {
        let position = self.list.len();
        self.index.insert(entry.id, position);
        self.list.push(entry);
        position
    }

    /// Removes the viewer `id`; the last one takes its position.
    pub(super) fn take(&mut self, id: PeerId) -> Option<Subscriber> {
        let position = self.index.remove(&id)?;
        let taken = self.list.swap_remove(position);
        if let Some(moved) = self.list.get(position) {
            self.index.insert(moved.id, position);
        }
        Some(taken)
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Subscriber> {
        self.list.iter()
    }

    pub(super) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Subscriber> {
        self.list.iter_mut()
    }
}

impl Index<usize> for Subscribers {
    type Output = Subscriber;

    fn index(&self, position: usize) -> &Subscriber {
        &self.list[position]
    }
}

impl IndexMut<usize> for Subscribers {
    fn index_mut(&mut self, position: usize) -> &mut Subscriber {
        &mut self.list[position]
    }
}

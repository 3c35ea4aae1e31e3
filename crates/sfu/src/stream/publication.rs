//! The publisher side of a stream: who publishes, its tracks (at most one audio track, and one
//! video track or up to three simulcast layers), each track's shared state ([`UpTrack`]:
//! sequence unwrapping, NACK cache, keyframe requests, rates, sender-report clock), and the
//! video layers ranked by what they carry.

use std::time::Instant;

use crate::codec::MediaKind;
use crate::down_track::DownTrack;
use crate::layers::rid_rank;
use crate::track::{PublishedTrack, UpTrack};
use crate::vp8;

use super::PeerId;

/// Simulcast layers kept at most.
const MAX_LAYERS: usize = 3;

/// The current publisher and its tracks.
#[derive(Debug, Default)]
pub(super) struct Publication {
    pub(super) publisher: Option<PeerId>,
    pub(super) tracks: Vec<PublishedTrack>,
    /// Shared state per published track, same index as `tracks`.
    pub(super) up_tracks: Vec<UpTrack>,
}

impl Publication {
    /// Makes `publisher` the publisher with `tracks`: only the first track of each kind (or
    /// the simulcast layers of the video) is kept, and a track whose codec is not of its kind
    /// is ignored.
    pub(super) fn replace(&mut self, publisher: PeerId, tracks: Vec<PublishedTrack>) {
        let mut kept: Vec<PublishedTrack> = Vec::with_capacity(2);
        for track in tracks {
            if track.codec.kind() != track.kind {
                tracing::warn!(
                    publisher,
                    ?track,
                    "ignoring track whose codec is not of its kind"
                );
            } else if !accepts(&kept, &track) {
                tracing::warn!(
                    publisher,
                    ?track,
                    "ignoring a second track of the same kind"
                );
            } else {
                kept.push(track);
            }
        }
        self.up_tracks = kept.iter().map(UpTrack::new).collect();
        self.tracks = kept;
        self.publisher = Some(publisher);
    }

    /// Adds one track to the current publisher's; returns its index, or `None` when it does
    /// not fit (another publisher, a codec not of its kind, one track too many).
    pub(super) fn add(&mut self, publisher: PeerId, track: PublishedTrack) -> Option<usize> {
        if self.publisher != Some(publisher)
            || track.codec.kind() != track.kind
            || !accepts(&self.tracks, &track)
        {
            return None;
        }
        let index = self.tracks.len();
        self.up_tracks.push(UpTrack::new(&track));
        self.tracks.push(track);
        Some(index)
    }

    /// Removes the publisher if `publisher` is the current one; says whether it was.
    pub(super) fn remove(&mut self, publisher: PeerId) -> bool {
        if self.publisher != Some(publisher) {
            return false;
        }
        self.publisher = None;
        self.tracks.clear();
        self.up_tracks.clear();
        true
    }

    /// The index of the track with `ssrc`.
    pub(super) fn track_of(&self, ssrc: u32) -> Option<usize> {
        self.tracks.iter().position(|track| track.ssrc == ssrc)
    }

    /// The index of the video track (simulcast layer) with `ssrc`.
    pub(super) fn video_track_of(&self, ssrc: u32) -> Option<usize> {
        self.tracks
            .iter()
            .position(|t| t.kind == MediaKind::Video && t.ssrc == ssrc)
    }

    /// The index of the audio track.
    pub(super) fn audio_track(&self) -> Option<usize> {
        self.tracks.iter().position(|t| t.kind == MediaKind::Audio)
    }

    /// The video tracks (simulcast layers) as indices into `tracks`, smallest first: by
    /// measured bitrate, then by RID convention, then in the order they were published.
    pub(super) fn ranked_layers(&self, now: Instant) -> Vec<usize> {
        let mut layers: Vec<(u64, u8, usize)> = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(_, track)| track.kind == MediaKind::Video)
            .map(|(index, track)| {
                (
                    self.up_tracks[index].rate.bitrate_bps(now),
                    track.rid.as_deref().map_or(1, rid_rank),
                    index,
                )
            })
            .collect();
        // Until every layer has been measured, the names decide.
        if layers.iter().any(|(bps, _, _)| *bps == 0) {
            layers.sort_by_key(|&(_, rank, index)| (rank, index));
        } else {
            layers.sort_by_key(|&(bps, rank, index)| (bps, rank, index));
        }
        layers.into_iter().map(|(_, _, index)| index).collect()
    }

    /// The most any viewer can use: the top layer's bitrate and a margin.
    pub(super) fn layer_ceiling(&self, now: Instant) -> u64 {
        self.ranked_layers(now)
            .last()
            .map_or(0, |&top| self.up_tracks[top].rate.bitrate_bps(now) * 3 / 2)
    }

    /// The incoming bitrate of the audio track(s).
    pub(super) fn audio_bps(&self, now: Instant) -> u64 {
        self.tracks
            .iter()
            .zip(&self.up_tracks)
            .filter(|(track, _)| track.kind == MediaKind::Audio)
            .map(|(_, up)| up.rate.bitrate_bps(now))
            .sum::<u64>()
    }

    /// What a viewer's video is being sent now: its layer's bitrate, or the share of the
    /// temporal layers it gets.
    pub(super) fn sending_bps(&self, video: &DownTrack, now: Instant) -> u64 {
        let Some(up) = video.layer.map(|index| &self.up_tracks[index]) else {
            return 0;
        };
        let current = video.temporal.current();
        if current == vp8::ALL_LAYERS || usize::from(current) + 1 >= up.temporal_layers {
            up.rate.bitrate_bps(now)
        } else {
            up.temporal_bps(current, now)
        }
    }
}

/// Whether `track` may join `kept`: one audio track; one video track, or up to three
/// simulcast layers with distinct RIDs.
fn accepts(kept: &[PublishedTrack], track: &PublishedTrack) -> bool {
    let same_kind: Vec<&PublishedTrack> = kept.iter().filter(|t| t.kind == track.kind).collect();
    if same_kind.is_empty() {
        return true;
    }
    track.kind == MediaKind::Video
        && same_kind.len() < MAX_LAYERS
        && track.rid.is_some()
        && same_kind
            .iter()
            .all(|t| t.rid.is_some() && t.rid != track.rid && t.codec == track.codec)
}

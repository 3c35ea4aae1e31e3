//! Which published tracks some viewer waits for a keyframe of (to start, or to switch
//! layers). Recomputed on every change of who gets what; a track that is waited for has its
//! keyframe requests repeated until the keyframe comes (the requests themselves, collapsed
//! and throttled, are each up track's `KeyframeRequester`).

use std::time::Instant;

use crate::track::UpTrack;

use super::subscribers::Subscribers;

/// Per track (same index as the publication's tracks): whether some viewer waits.
#[derive(Debug, Default)]
pub(super) struct KeyframeWaits {
    waiting: Vec<bool>,
}

impl KeyframeWaits {
    /// Recomputes which of `tracks` tracks some viewer waits for a keyframe of.
    pub(super) fn refresh(&mut self, tracks: usize, subscribers: &Subscribers) {
        self.waiting.clear();
        self.waiting.resize(tracks, false);
        for subscriber in subscribers.iter() {
            if let Some(video) = &subscriber.video {
                for (index, waiting) in self.waiting.iter_mut().enumerate() {
                    *waiting |= video.needs_keyframe_of(index);
                }
            }
        }
    }

    /// Whether some viewer waits for a keyframe of track `index`.
    pub(super) fn is_waited_for(&self, index: usize) -> bool {
        self.waiting.get(index).copied().unwrap_or(false)
    }

    /// Asks for a keyframe on every track some viewer waits for.
    pub(super) fn request(&self, up_tracks: &mut [UpTrack]) {
        for (up, &waiting) in up_tracks.iter_mut().zip(&self.waiting) {
            if waiting {
                up.keyframes.request();
            }
        }
    }

    /// When the next keyframe request is due on some track.
    pub(super) fn poll_timeout(&self, up_tracks: &[UpTrack]) -> Option<Instant> {
        up_tracks
            .iter()
            .zip(&self.waiting)
            .filter_map(|(up, &waiting)| up.keyframes.poll_timeout(waiting))
            .min()
    }
}

//! A joining viewer starts from the newest keyframe still in the NACK cache, when it is
//! recent, instead of waiting for the next one.
//!
//! Waiting means asking the publisher (at most every 300 ms: encoders do not honour requests
//! more often) and then its keyframe's paced transmission; in a join storm that is most of a
//! viewer's time to first picture. The cache already holds that keyframe and every packet
//! since (shared by all viewers, payloads not copied), so the viewer is sent them at once,
//! rewritten for it like live packets, and continues with the live ones: its first picture
//! comes up to [`MAX_AGE`] older than the live edge, which its jitter buffer absorbs. An older
//! keyframe would cost the viewer delay and its link a burst, so then it waits for a fresh one
//! as before.
//!
//! The caller says when: once the viewer can decrypt (the engine calls it on the viewer's
//! first authenticated RTCP). A burst sent the moment our side of the DTLS handshake is done
//! can reach a client still finishing its own, which drops it — and with it the keyframe.

use std::time::{Duration, Instant};

use crate::codec::Codec;
use crate::keyframe::is_keyframe_start;
use crate::vp8;

use super::{PeerId, Stream};

/// The oldest cached keyframe a viewer starts from.
pub(super) const MAX_AGE: Duration = Duration::from_millis(500);
/// The most packets a start from the cache sends at once (a keyframe and what followed).
pub(super) const MAX_PACKETS: u64 = 256;

impl Stream {
    /// Starts viewer `subscriber` on its video layer's cached keyframe, if it still waits for
    /// a keyframe and the cache holds a recent one; whether it did. Call it once, when the
    /// viewer can decrypt.
    pub fn start_from_cache(&mut self, subscriber: PeerId, now: Instant) -> bool {
        let Some(position) = self.subscribers.position(subscriber) else {
            return false;
        };
        let subscriber = &mut self.subscribers[position];
        let Some(index) = subscriber
            .video
            .as_ref()
            .filter(|video| video.is_waiting())
            .and_then(|video| video.layer)
        else {
            return false;
        };
        let track = &self.publication.tracks[index];
        let up = &self.publication.up_tracks[index];
        let (Some((start, at)), Some(newest)) = (up.last_keyframe, up.newest) else {
            return false;
        };
        // `newest` is never behind `start`: both are marked as the packet is taken in.
        if now.saturating_duration_since(at) > MAX_AGE || newest - start >= MAX_PACKETS {
            return false;
        }
        for compacted in start..=newest {
            // A packet lost on the way in is missing here as it was for live viewers.
            let Some(packet) = up.cache.get(compacted) else {
                continue;
            };
            let can_start = is_keyframe_start(track.codec, &packet.payload);
            let descriptor = if track.codec == Codec::Vp8 {
                vp8::parse(&packet.payload)
            } else {
                None
            };
            let forwarded = subscriber.forward(
                index,
                track,
                compacted,
                packet,
                can_start,
                descriptor.as_ref(),
                now,
                &mut self.outputs,
            );
            if forwarded.is_some() {
                self.stats.packets_out += 1;
            }
        }
        subscriber
            .video
            .as_ref()
            .is_some_and(|video| !video.is_waiting())
    }
}

//! A cross-node message: the signed frame published on a channel, and what a receiver gets
//! once the frame passed verification.
//!
//! Frame, all integers big-endian:
//!
//! ```text
//! "DCM1" | tag (32) | sent at, Unix ms (8) | nonce (8) | sender length (1) | sender | payload
//! ```
//!
//! `tag` is HMAC-SHA256 over a context string, the full channel name (which holds the
//! namespace and the topic, so a message cannot be moved to another stream, node or cluster)
//! and every byte after the tag. The HMAC key is derived from the shared secret for this use
//! only, so a message tag can never stand in for a token signature made with the same
//! secret. The nonce makes every frame unique, which is what the replay guard keys on.

use bytes::Bytes;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::de::DeserializeOwned;

use crate::topic::Topic;

const MAGIC: &[u8; 4] = b"DCM1";
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + TAG_LEN + 8 + 8 + 1;
/// Separates this MAC's inputs from any other use of the shared secret.
const MAC_CONTEXT: &[u8] = b"directo-cluster message v1\0";
/// What the message key is derived from.
const KEY_CONTEXT: &[u8] = b"directo-cluster message key v1";

/// A message another node (or this one) published, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMessage {
    /// The topic it came on.
    pub topic: Topic,
    /// The sending node's id.
    pub from: String,
    /// When the sender signed it, Unix milliseconds on the sender's clock.
    pub sent_at_ms: u64,
    /// The payload as published.
    pub payload: Bytes,
}

impl ClusterMessage {
    /// The payload decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// Why a frame was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not a frame of ours, or its tag does not verify: forged, or another secret.
    Forged,
    /// Signed too long ago, or too far in the future.
    Stale,
}

/// A verified frame's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    pub(crate) tag: [u8; TAG_LEN],
    pub(crate) from: String,
    pub(crate) sent_at_ms: u64,
    pub(crate) payload: Bytes,
}

/// Seals and opens frames with the key derived from the shared secret.
pub(crate) struct Sealer {
    key: hmac::Key,
    random: SystemRandom,
}

impl Sealer {
    /// A sealer for `secret` (the cluster's shared secret).
    pub(crate) fn new(secret: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&root, KEY_CONTEXT);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            random: SystemRandom::new(),
        }
    }

    /// The frame carrying `payload` from `from` (a checked node id, at most 64 bytes) on
    /// `channel`, signed at `now_ms`.
    pub(crate) fn seal(&self, channel: &str, from: &str, now_ms: u64, payload: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 8];
        // The OS random source failing is not something to stop a publish for: the nonce
        // only has to differ between frames, and the clock plus a fallback counter does that.
        if self.random.fill(&mut nonce).is_err() {
            nonce = fallback_nonce();
        }
        let from_len = u8::try_from(from.len()).unwrap_or(u8::MAX);
        let mut frame = Vec::with_capacity(HEADER_LEN + from.len() + payload.len());
        frame.extend_from_slice(MAGIC);
        frame.extend_from_slice(&[0u8; TAG_LEN]);
        frame.extend_from_slice(&now_ms.to_be_bytes());
        frame.extend_from_slice(&nonce);
        frame.push(from_len);
        frame.extend_from_slice(&from.as_bytes()[..usize::from(from_len)]);
        frame.extend_from_slice(payload);
        let tag = self.tag(channel, &frame[MAGIC.len() + TAG_LEN..]);
        frame[MAGIC.len()..MAGIC.len() + TAG_LEN].copy_from_slice(tag.as_ref());
        frame
    }

    /// The frame's contents if it was sealed with our key for `channel` within
    /// `max_age_ms` of `now_ms`.
    pub(crate) fn open(
        &self,
        channel: &str,
        frame: &[u8],
        now_ms: u64,
        max_age_ms: u64,
    ) -> Result<Opened, Rejection> {
        if frame.len() < HEADER_LEN || &frame[..MAGIC.len()] != MAGIC {
            return Err(Rejection::Forged);
        }
        let tag = &frame[MAGIC.len()..MAGIC.len() + TAG_LEN];
        let signed = &frame[MAGIC.len() + TAG_LEN..];
        let mut input = Vec::with_capacity(MAC_CONTEXT.len() + 4 + channel.len() + signed.len());
        mac_input(&mut input, channel, signed);
        hmac::verify(&self.key, &input, tag).map_err(|_| Rejection::Forged)?;
        // Only now is the rest trusted to be laid out as we wrote it.
        let sent_at_ms = u64::from_be_bytes(read_array(signed, 0).ok_or(Rejection::Forged)?);
        if now_ms.abs_diff(sent_at_ms) > max_age_ms {
            return Err(Rejection::Stale);
        }
        let from_len = usize::from(*signed.get(16).ok_or(Rejection::Forged)?);
        let from = signed.get(17..17 + from_len).ok_or(Rejection::Forged)?;
        let from = std::str::from_utf8(from).map_err(|_| Rejection::Forged)?;
        let payload = Bytes::copy_from_slice(&signed[17 + from_len..]);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        Ok(Opened {
            tag: tag_bytes,
            from: from.to_owned(),
            sent_at_ms,
            payload,
        })
    }

    fn tag(&self, channel: &str, signed: &[u8]) -> hmac::Tag {
        let mut input = Vec::with_capacity(MAC_CONTEXT.len() + 4 + channel.len() + signed.len());
        mac_input(&mut input, channel, signed);
        hmac::sign(&self.key, &input)
    }
}

/// The MAC's input: context, channel (length-prefixed, so no channel/payload split is
/// ambiguous), then the signed part of the frame.
fn mac_input(input: &mut Vec<u8>, channel: &str, signed: &[u8]) {
    input.extend_from_slice(MAC_CONTEXT);
    let channel_len = u32::try_from(channel.len()).unwrap_or(u32::MAX);
    input.extend_from_slice(&channel_len.to_be_bytes());
    input.extend_from_slice(channel.as_bytes());
    input.extend_from_slice(signed);
}

fn read_array(bytes: &[u8], at: usize) -> Option<[u8; 8]> {
    bytes.get(at..at + 8)?.try_into().ok()
}

/// A nonce from a process-wide counter mixed with the time, for when the OS gives no random.
fn fallback_nonce() -> [u8; 8] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    (count ^ (u64::from(nanos) << 32)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000_000;
    const MAX_AGE: u64 = 30_000;

    #[test]
    fn a_sealed_frame_opens_on_its_channel() {
        let sealer = Sealer::new(b"secret");
        let frame = sealer.seal("directo:msg:admin", "node-a", NOW, b"{\"drain\":true}");
        let opened = sealer
            .open("directo:msg:admin", &frame, NOW + 5, MAX_AGE)
            .expect("a fresh frame of ours");
        assert_eq!(opened.from, "node-a");
        assert_eq!(opened.sent_at_ms, NOW);
        assert_eq!(&opened.payload[..], b"{\"drain\":true}");
    }

    #[test]
    fn another_channel_secret_or_byte_is_forged() {
        let sealer = Sealer::new(b"secret");
        let frame = sealer.seal("directo:msg:chat:a", "node-a", NOW, b"hi");
        let open = |sealer: &Sealer, channel: &str, frame: &[u8]| {
            sealer.open(channel, frame, NOW, MAX_AGE).map(|_| ())
        };
        assert_eq!(
            open(&sealer, "directo:msg:chat:b", &frame),
            Err(Rejection::Forged)
        );
        assert_eq!(
            open(&sealer, "other:msg:chat:a", &frame),
            Err(Rejection::Forged)
        );
        assert_eq!(
            open(&Sealer::new(b"other"), "directo:msg:chat:a", &frame),
            Err(Rejection::Forged)
        );
        for index in 0..frame.len() {
            let mut flipped = frame.clone();
            flipped[index] ^= 1;
            assert_eq!(
                open(&sealer, "directo:msg:chat:a", &flipped),
                Err(Rejection::Forged),
                "byte {index}"
            );
        }
        assert_eq!(
            open(&sealer, "directo:msg:chat:a", &frame[..20]),
            Err(Rejection::Forged)
        );
    }

    #[test]
    fn old_and_future_frames_are_stale() {
        let sealer = Sealer::new(b"secret");
        let frame = sealer.seal("c", "node-a", NOW, b"");
        assert_eq!(
            sealer
                .open("c", &frame, NOW + MAX_AGE + 1, MAX_AGE)
                .map(|_| ()),
            Err(Rejection::Stale)
        );
        assert_eq!(
            sealer
                .open("c", &frame, NOW - MAX_AGE - 1, MAX_AGE)
                .map(|_| ()),
            Err(Rejection::Stale)
        );
    }

    #[test]
    fn the_same_payload_twice_makes_two_frames() {
        let sealer = Sealer::new(b"secret");
        assert_ne!(
            sealer.seal("c", "node-a", NOW, b"x"),
            sealer.seal("c", "node-a", NOW, b"x")
        );
    }
}

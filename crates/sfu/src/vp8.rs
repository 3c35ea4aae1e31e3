//! VP8's RTP payload descriptor (RFC 7741 §4.2) as the forwarder needs it, and the per-viewer
//! temporal-layer filter that thins a layer by dropping its upper temporal layers.
//!
//! An encoder with temporal scalability (Chrome's simulcast layers are `L1T3`: three temporal
//! layers) tags every frame with a temporal layer id (TID): frames of layer 0 reference only
//! layer 0, frames of layer 1 reference layers 0–1, and so on, so dropping every frame above some
//! TID leaves a decodable stream at a lower frame rate (½ or ¼ of it) and bitrate. The filter
//! drops whole frames: its layer changes only at a frame's first packet — down at once, up at a
//! frame flagged layer-sync (Y: it references only layer 0) or at a keyframe, like mediasoup.
//!
//! A dropped frame leaves holes a viewer must not see: the down track's munger closes the
//! sequence-number gap, and the picture id (which a receiver's reference finder uses to see that
//! nothing it needs is missing) is renumbered through [`PicturePatch`]. TL0PICIDX needs no
//! renumbering: layer-0 frames are never dropped.

use bytes::{Bytes, BytesMut};

/// What the forwarder reads from one packet's VP8 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Descriptor {
    /// S=1 and partition 0: the first packet of a frame.
    pub(crate) frame_start: bool,
    /// The picture id and whether it is the 15-bit form (M=1); it always sits at offset 2.
    pub(crate) picture_id: Option<(u16, bool)>,
    /// The temporal layer id, when the descriptor carries one.
    pub(crate) tid: Option<u8>,
    /// Y: the frame references only temporal layer 0 (a safe point to add its layer).
    pub(crate) layer_sync: bool,
    /// The descriptor's length: where the VP8 payload header starts.
    pub(crate) len: usize,
}

/// Offset of the picture id in an extended descriptor.
const PICTURE_ID_AT: usize = 2;

/// Parses the descriptor at the start of a VP8 RTP payload; `None` when it is truncated.
pub(crate) fn parse(payload: &[u8]) -> Option<Descriptor> {
    let first = *payload.first()?;
    let mut descriptor = Descriptor {
        frame_start: first & 0x10 != 0 && first & 0x07 == 0,
        len: 1,
        ..Descriptor::default()
    };
    if first & 0x80 == 0 {
        return Some(descriptor);
    }
    let ext = *payload.get(1)?;
    let mut offset = PICTURE_ID_AT;
    if ext & 0x80 != 0 {
        let high = *payload.get(offset)?;
        if high & 0x80 != 0 {
            let low = *payload.get(offset + 1)?;
            descriptor.picture_id = Some((u16::from(high & 0x7f) << 8 | u16::from(low), true));
            offset += 2;
        } else {
            descriptor.picture_id = Some((u16::from(high), false));
            offset += 1;
        }
    }
    if ext & 0x40 != 0 {
        payload.get(offset)?;
        offset += 1;
    }
    // T and K share one byte: TID, Y and KEYIDX.
    if ext & 0x30 != 0 {
        let tid_byte = *payload.get(offset)?;
        if ext & 0x20 != 0 {
            descriptor.tid = Some(tid_byte >> 6);
            descriptor.layer_sync = tid_byte & 0x20 != 0;
        }
        offset += 1;
    }
    descriptor.len = offset;
    Some(descriptor)
}

/// "Every temporal layer": the filter forwards all frames.
pub(crate) const ALL_LAYERS: u8 = u8::MAX;

/// What the filter says about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Forward it.
    Forward,
    /// Drop it; `picture` says it is the first packet of a dropped frame (one picture id
    /// fewer for the viewer).
    Drop {
        /// The packet starts the dropped frame.
        picture: bool,
    },
}

/// One viewer's temporal-layer filter for its video down track.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TemporalFilter {
    /// The highest temporal layer the viewer should get ([`ALL_LAYERS`]: all of them).
    pub(crate) target: u8,
    /// The highest it gets now.
    current: u8,
}

impl Default for TemporalFilter {
    fn default() -> Self {
        Self {
            target: ALL_LAYERS,
            current: ALL_LAYERS,
        }
    }
}

impl TemporalFilter {
    /// The temporal layer the viewer gets now.
    pub(crate) fn current(&self) -> u8 {
        self.current
    }

    /// Decides one packet: `descriptor` is its VP8 descriptor (`None` for other codecs or a
    /// truncated one, which is forwarded), `keyframe` whether it starts a keyframe.
    pub(crate) fn admit(&mut self, descriptor: Option<&Descriptor>, keyframe: bool) -> Verdict {
        let Some(Descriptor {
            frame_start,
            tid: Some(tid),
            layer_sync,
            ..
        }) = descriptor.copied()
        else {
            return Verdict::Forward;
        };
        if frame_start {
            if keyframe || self.current > self.target {
                self.current = self.target;
            } else if tid > self.current && tid <= self.target && layer_sync {
                self.current = tid;
            }
        }
        if tid <= self.current {
            Verdict::Forward
        } else {
            Verdict::Drop {
                picture: frame_start,
            }
        }
    }
}

/// The picture-id renumbering of one forwarded packet: `offset` pictures fewer than the
/// publisher's numbering (the frames dropped for this viewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PicturePatch {
    pub(crate) offset: u16,
}

impl PicturePatch {
    /// The payload with its picture id renumbered: a copy, made only for a viewer that had
    /// frames dropped (everyone else shares the publisher's bytes). The payload is returned
    /// as is when it has no picture id.
    pub(crate) fn apply(self, payload: &Bytes) -> Bytes {
        let Some(Descriptor {
            picture_id: Some((picture_id, long)),
            ..
        }) = parse(payload)
        else {
            return payload.clone();
        };
        let mut copy = BytesMut::from(&payload[..]);
        if long {
            let renumbered = picture_id.wrapping_sub(self.offset) & 0x7fff;
            copy[PICTURE_ID_AT] = 0x80 | (renumbered >> 8) as u8;
            copy[PICTURE_ID_AT + 1] = renumbered as u8;
        } else {
            copy[PICTURE_ID_AT] = (picture_id.wrapping_sub(self.offset) & 0x7f) as u8;
        }
        copy.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor with a 15-bit picture id, TL0PICIDX and TID/Y, then one payload byte.
    fn packet(start: bool, picture_id: u16, tid: u8, sync: bool) -> Vec<u8> {
        vec![
            0x80 | if start { 0x10 } else { 0 },
            0xe0,
            0x80 | (picture_id >> 8) as u8,
            picture_id as u8,
            7,
            tid << 6 | if sync { 0x20 } else { 0 },
            0x9d,
        ]
    }

    #[test]
    fn parses_the_fields_the_forwarder_uses() {
        let descriptor = parse(&packet(true, 0x1234, 2, true)).unwrap();
        assert_eq!(
            descriptor,
            Descriptor {
                frame_start: true,
                picture_id: Some((0x1234, true)),
                tid: Some(2),
                layer_sync: true,
                len: 6,
            }
        );
        // K without T: the byte is there, no TID.
        let key_index = [0x90, 0x10, 0x03, 0x9d];
        assert_eq!(parse(&key_index).unwrap().len, 3);
        assert_eq!(parse(&key_index).unwrap().tid, None);
        // Short picture id, no TID.
        let short = [0x90, 0x80, 0x05, 0x9d];
        assert_eq!(parse(&short).unwrap().picture_id, Some((5, false)));
        assert_eq!(parse(&short).unwrap().tid, None);
        assert_eq!(parse(&short).unwrap().len, 3);
        // Not extended.
        assert_eq!(parse(&[0x10, 0x9d]).unwrap().picture_id, None);
        assert_eq!(parse(&[0x10, 0x9d]).unwrap().len, 1);
    }

    #[test]
    fn truncated_descriptors_are_none_and_never_panic() {
        let full = packet(true, 0x1234, 1, false);
        for len in 0..full.len() - 1 {
            assert_eq!(parse(&full[..len]), None, "len {len}");
        }
        for len in 0..full.len() {
            let _ = PicturePatch { offset: 3 }.apply(&Bytes::copy_from_slice(&full[..len]));
        }
        for byte in 0..=255u8 {
            let _ = parse(&[byte]);
            let _ = parse(&[0x80, byte]);
            let _ = parse(&[0x80, byte, 0xff]);
        }
    }

    #[test]
    fn renumbers_picture_ids_with_wrap() {
        let patched = PicturePatch { offset: 3 }.apply(&Bytes::from(packet(true, 1, 0, false)));
        assert_eq!(parse(&patched).unwrap().picture_id, Some((0x7ffe, true)));
        assert_eq!(&patched[4..], &[7, 0, 0x9d], "the rest is untouched");
        let short = Bytes::from_static(&[0x90, 0x80, 0x01, 0x9d]);
        let patched = PicturePatch { offset: 2 }.apply(&short);
        assert_eq!(parse(&patched).unwrap().picture_id, Some((0x7f, false)));
    }

    /// Frames in the L1T3 pattern 0 2 1 2 (Y on the first TL1/TL2 frame after a TL0 one),
    /// each one packet.
    fn l1t3(frame: u16) -> Descriptor {
        let tid = [0, 2, 1, 2][usize::from(frame % 4)];
        Descriptor {
            frame_start: true,
            picture_id: Some((frame, true)),
            tid: Some(tid),
            layer_sync: frame % 4 == 1 || frame % 4 == 2,
            len: 6,
        }
    }

    #[test]
    fn drops_upper_layers_down_at_once_up_at_a_sync_frame() {
        let mut filter = TemporalFilter::default();
        let forwarded = |filter: &mut TemporalFilter, frames: std::ops::Range<u16>| {
            frames
                .filter(|&f| filter.admit(Some(&l1t3(f)), f == 0) == Verdict::Forward)
                .collect::<Vec<_>>()
        };
        assert_eq!(forwarded(&mut filter, 0..8), (0..8).collect::<Vec<_>>());
        filter.target = 0;
        assert_eq!(forwarded(&mut filter, 8..16), vec![8, 12]);
        filter.target = 1;
        // Frame 17 is TL2, 18 is TL1 with Y: layer 1 comes back there.
        assert_eq!(forwarded(&mut filter, 16..24), vec![16, 18, 20, 22]);
        filter.target = ALL_LAYERS;
        // Frame 25 (TL2, Y) brings layer 2 back.
        assert_eq!(forwarded(&mut filter, 24..28), vec![24, 25, 26, 27]);
    }

    #[test]
    fn a_frame_is_kept_or_dropped_whole() {
        let mut filter = TemporalFilter::default();
        let mut first = l1t3(1);
        assert_eq!(filter.admit(Some(&first), false), Verdict::Forward);
        // Lowered in the middle of a TL2 frame: its remaining packets still go.
        filter.target = 0;
        first.frame_start = false;
        assert_eq!(filter.admit(Some(&first), false), Verdict::Forward);
        let next = l1t3(3);
        assert_eq!(
            filter.admit(Some(&next), false),
            Verdict::Drop { picture: true }
        );
        let rest = Descriptor {
            frame_start: false,
            ..next
        };
        assert_eq!(
            filter.admit(Some(&rest), false),
            Verdict::Drop { picture: false }
        );
        assert_eq!(filter.admit(None, false), Verdict::Forward);
    }
}

//! VP8 over RTP (RFC 7741), as much as the test clients need: cut a synthetic frame into RTP
//! payloads with valid descriptors, and tell from a received payload whether it starts a
//! keyframe.
//!
//! The frames carry no real picture: a keyframe is the 10-byte VP8 keyframe header (frame tag
//! with P=0, start code `9d 01 2a`, width, height; `directo_testkit::vp8`) followed by filler;
//! an inter frame is the 3-byte frame tag with P=1 followed by filler. That is all an SFU or a depacketizer looks at.
//! The descriptor is the one Chrome writes: X=1, I=1, a 15-bit PictureID, partition 0.

use bytes::{BufMut, Bytes, BytesMut};
use directo_testkit::vp8::{frame_header, keyframe_size};

/// Descriptor length we write: flags, extension flags, two PictureID bytes.
const DESCRIPTOR_LEN: usize = 4;

/// Cuts synthetic VP8 frames into RTP payloads.
#[derive(Debug, Clone)]
pub struct Vp8Packetizer {
    picture_id: u16,
    width: u16,
    height: u16,
    payload_size: usize,
}

impl Vp8Packetizer {
    /// A packetizer for `width`x`height` frames in payloads of about `payload_size` bytes.
    pub fn new(width: u16, height: u16, payload_size: usize, first_picture_id: u16) -> Self {
        Vp8Packetizer {
            picture_id: first_picture_id & 0x7fff,
            width,
            height,
            payload_size: payload_size.max(DESCRIPTOR_LEN + 16),
        }
    }

    /// The RTP payloads of the next frame, `packets` of them (at least one). The first has
    /// S=1; the caller sets the marker bit on the last.
    pub fn frame(&mut self, keyframe: bool, packets: usize) -> Vec<Bytes> {
        let packets = packets.max(1);
        let body_per_packet = self.payload_size - DESCRIPTOR_LEN;
        let frame_len = body_per_packet * packets;
        let picture_id = self.picture_id;
        self.picture_id = (self.picture_id + 1) & 0x7fff;

        let header = frame_header(keyframe, frame_len, self.width, self.height);
        let mut out = Vec::with_capacity(packets);
        for index in 0..packets {
            let mut buf = BytesMut::with_capacity(self.payload_size);
            let start = if index == 0 { 0x10 } else { 0x00 };
            buf.put_u8(0x80 | start);
            buf.put_u8(0x80);
            buf.put_u16(0x8000 | picture_id);
            let mut body = body_per_packet;
            if index == 0 {
                buf.put_slice(&header);
                body -= header.len();
            }
            // Filler that changes per frame, so identical payloads never mask a forwarding bug.
            buf.put_bytes((picture_id as u8) ^ (index as u8), body);
            out.push(buf.freeze());
        }
        out
    }
}

/// What a VP8 payload descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// S: this packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: the partition index.
    pub partition_id: u8,
    /// The PictureID, when present.
    pub picture_id: Option<u16>,
    /// Bytes the descriptor takes; the VP8 payload starts after them.
    pub len: usize,
}

/// Parses the payload descriptor at the start of a VP8 RTP payload; `None` if truncated.
pub fn parse_descriptor(payload: &[u8]) -> Option<Vp8Descriptor> {
    let first = *payload.first()?;
    let mut len = 1;
    let mut picture_id = None;
    if first & 0x80 != 0 {
        let ext = *payload.get(1)?;
        len = 2;
        if ext & 0x80 != 0 {
            let b = *payload.get(len)?;
            if b & 0x80 != 0 {
                let low = *payload.get(len + 1)?;
                picture_id = Some((u16::from(b & 0x7f) << 8) | u16::from(low));
                len += 2;
            } else {
                picture_id = Some(u16::from(b & 0x7f));
                len += 1;
            }
        }
        if ext & 0x40 != 0 {
            len += 1;
        }
        if ext & 0x30 != 0 {
            len += 1;
        }
    }
    if payload.len() < len {
        return None;
    }
    Some(Vp8Descriptor {
        start_of_partition: first & 0x10 != 0,
        partition_id: first & 0x07,
        picture_id,
        len,
    })
}

/// Whether a VP8 RTP payload is the first packet of a keyframe: S=1, PID=0, frame tag P=0 and
/// the keyframe start code.
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    let Some(descriptor) = parse_descriptor(payload) else {
        return false;
    };
    if !descriptor.start_of_partition || descriptor.partition_id != 0 {
        return false;
    }
    keyframe_size(&payload[descriptor.len..]).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_first_packet_is_recognised() {
        let mut packetizer = Vp8Packetizer::new(640, 480, 1000, 7);
        let frame = packetizer.frame(true, 4);
        assert_eq!(frame.len(), 4);
        assert!(is_keyframe_start(&frame[0]));
        assert!(frame[1..].iter().all(|p| !is_keyframe_start(p)));
        assert!(frame.iter().all(|p| p.len() == 1000));
        let descriptor = parse_descriptor(&frame[0]).unwrap();
        assert_eq!(descriptor.picture_id, Some(7));
        assert_eq!(descriptor.len, 4);
        let vp8 = &frame[0][4..];
        assert_eq!(u16::from_le_bytes([vp8[6], vp8[7]]), 640);
        assert_eq!(u16::from_le_bytes([vp8[8], vp8[9]]), 480);
    }

    #[test]
    fn inter_frame_is_not_a_keyframe() {
        let mut packetizer = Vp8Packetizer::new(640, 480, 1000, 0x7fff);
        packetizer.frame(true, 1);
        let frame = packetizer.frame(false, 2);
        assert!(parse_descriptor(&frame[0]).unwrap().start_of_partition);
        assert_eq!(parse_descriptor(&frame[0]).unwrap().picture_id, Some(0));
        assert!(!is_keyframe_start(&frame[0]));
        assert_eq!(frame[0][4] & 0x01, 1);
    }

    #[test]
    fn short_descriptors_parse() {
        // No extension: one byte, S=1.
        assert_eq!(
            parse_descriptor(&[0x10, 0x00]).unwrap(),
            Vp8Descriptor {
                start_of_partition: true,
                partition_id: 0,
                picture_id: None,
                len: 1
            }
        );
        // 7-bit PictureID, TL0PICIDX and TID present.
        let d = parse_descriptor(&[0x90, 0xe0, 0x05, 0x01, 0x02]).unwrap();
        assert_eq!((d.picture_id, d.len), (Some(5), 5));
        assert!(parse_descriptor(&[0x90, 0x80]).is_none());
        assert!(parse_descriptor(&[]).is_none());
        assert!(!is_keyframe_start(&[0x10, 0x00, 0x00]));
    }
}

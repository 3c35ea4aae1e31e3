//! The RTX stream (RFC 4588) toward one viewer: retransmissions and probe packets travel on a
//! stream of their own, with their own SSRC, payload type and sequence numbers, each carrying the
//! original sequence number (OSN) in its first two payload bytes and then the original payload.
//!
//! Why never resend on the media SSRC: SRTP derives its nonce from the SSRC and the packet index
//! (sequence number and rollover count), so a second packet with the same (SSRC, index) and any
//! byte different — a fresh transport-wide sequence number in the header is enough — reuses an
//! AES-GCM nonce with another plaintext, which gives away the authentication key (the "forbidden
//! attack"). An RTX packet takes the next index of the RTX stream every time. Bandwidth probes go
//! the same way, as copies of recent packets, like libwebrtc's probes when it has RTX.
//!
//! This module owns the RTX numbering and the encapsulation. Which packet to resend, and when,
//! is the down track's call; a viewer that did not negotiate RTX has no RTX stream and is never
//! sent anything twice.

use bytes::{BufMut, Bytes, BytesMut};
use rtc::rtp::Packet;

/// What a viewer negotiated for retransmissions: our RTX SSRC toward it and its RTX payload
/// type for each media payload type (the `apt` of its `video/rtx` formats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtxConfig {
    /// Our SSRC of the RTX stream (announced with `a=ssrc-group:FID <media> <rtx>`).
    pub ssrc: u32,
    /// `(media payload type, RTX payload type)` pairs.
    pub payload_types: Vec<(u8, u8)>,
}

/// One viewer's RTX stream for one down track.
#[derive(Debug)]
pub(crate) struct RtxStream {
    config: RtxConfig,
    /// The RTX payload type for the current source's media payload type; `None` when the viewer
    /// negotiated no RTX format for it.
    payload_type: Option<u8>,
    next_seq: u16,
}

impl RtxStream {
    /// A stream whose numbering starts at the low bits of its SSRC: the engine picks SSRCs at
    /// random, which spares this sans-IO core a random number generator of its own.
    pub(crate) fn new(config: RtxConfig) -> Self {
        Self {
            next_seq: config.ssrc as u16,
            config,
            payload_type: None,
        }
    }

    /// Follows the down track onto a source sent with `media_payload_type` (or none).
    pub(crate) fn bind(&mut self, media_payload_type: Option<u8>) {
        self.payload_type = media_payload_type.and_then(|media| {
            self.config
                .payload_types
                .iter()
                .find(|(apt, _)| *apt == media)
                .map(|(_, rtx)| *rtx)
        });
    }

    /// Whether packets of the current source can be sent as RTX.
    pub(crate) fn is_active(&self) -> bool {
        self.payload_type.is_some()
    }

    /// Takes over the numbering of the stream this one replaces, if it is the same RTX stream
    /// (same SSRC): the viewer's SRTP context keeps counting where it was.
    pub(crate) fn continue_from(&mut self, previous: &RtxStream) {
        if previous.config.ssrc == self.config.ssrc {
            self.next_seq = previous.next_seq;
        }
    }

    /// Wraps `packet`, already rewritten for the viewer (media SSRC, payload type, sequence
    /// number), into the next RTX packet: same header otherwise, extensions included; the
    /// payload goes into `buffer`. `None` when the current source has no RTX payload type.
    pub(crate) fn wrap(&mut self, packet: Packet, buffer: &mut RtxBuffer) -> Option<Packet> {
        let payload_type = self.payload_type?;
        let Packet {
            mut header,
            payload,
        } = packet;
        let payload = buffer.encapsulate(header.sequence_number, &payload);
        header.ssrc = self.config.ssrc;
        header.payload_type = payload_type;
        header.sequence_number = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        Some(Packet { header, payload })
    }
}

/// Bytes each fresh allocation of an [`RtxBuffer`] holds: a dozen full-size packets.
const CHUNK: usize = 16 * 1024;

/// Where RTX payloads are written: one allocation shared by many packets (each payload is a
/// `Bytes` slice of it) and reused once they are all sent, instead of one per packet.
#[derive(Debug, Default)]
pub(crate) struct RtxBuffer {
    scratch: BytesMut,
}

impl RtxBuffer {
    /// The RTX payload for the packet numbered `osn` with `payload`.
    fn encapsulate(&mut self, osn: u16, payload: &[u8]) -> Bytes {
        let len = 2 + payload.len();
        if self.scratch.capacity() < len {
            // Reclaims the previous chunk when every payload cut from it has been dropped.
            self.scratch.reserve(len.max(CHUNK));
        }
        self.scratch.put_u16(osn);
        self.scratch.put_slice(payload);
        self.scratch.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(seq: u16, payload: &'static [u8]) -> Packet {
        let mut packet = Packet::default();
        packet.header.ssrc = 0xb0;
        packet.header.payload_type = 120;
        packet.header.sequence_number = seq;
        packet.header.timestamp = 77;
        packet.header.marker = true;
        packet.payload = Bytes::from_static(payload);
        packet
    }

    fn stream() -> RtxStream {
        let mut rtx = RtxStream::new(RtxConfig {
            ssrc: 0x1234_fffe,
            payload_types: vec![(120, 121), (102, 103)],
        });
        rtx.bind(Some(120));
        rtx
    }

    #[test]
    fn wraps_with_the_original_sequence_number_and_numbers_on_its_own() {
        let mut rtx = stream();
        let mut buffer = RtxBuffer::default();
        let first = rtx.wrap(media(500, b"abc"), &mut buffer).unwrap();
        assert_eq!(first.header.ssrc, 0x1234_fffe);
        assert_eq!(first.header.payload_type, 121);
        assert_eq!(first.header.sequence_number, 0xfffe);
        assert_eq!((first.header.timestamp, first.header.marker), (77, true));
        assert_eq!(&first.payload[..], &[0x01, 0xf4, b'a', b'b', b'c']);
        // The same packet again is a new RTX packet, across the 16-bit wrap.
        let seqs: Vec<u16> = (0..3)
            .map(|_| {
                let again = rtx.wrap(media(500, b"abc"), &mut buffer).unwrap();
                assert_eq!(&again.payload[..2], &[0x01, 0xf4]);
                again.header.sequence_number
            })
            .collect();
        assert_eq!(seqs, vec![0xffff, 0, 1]);
    }

    #[test]
    fn a_source_without_an_rtx_format_is_not_wrapped() {
        let mut rtx = stream();
        rtx.bind(Some(96));
        assert!(!rtx.is_active());
        assert!(
            rtx.wrap(media(1, b"x"), &mut RtxBuffer::default())
                .is_none()
        );
        rtx.bind(Some(102));
        let packet = rtx.wrap(media(1, b"x"), &mut RtxBuffer::default()).unwrap();
        assert_eq!(packet.header.payload_type, 103);
    }

    #[test]
    fn a_replacing_stream_continues_the_numbering_of_the_same_ssrc() {
        let mut old = stream();
        let mut buffer = RtxBuffer::default();
        old.wrap(media(1, b"x"), &mut buffer);
        let mut same = stream();
        same.continue_from(&old);
        let next = same.wrap(media(2, b"x"), &mut buffer).unwrap();
        assert_eq!(next.header.sequence_number, 0xffff);
        let mut other = RtxStream::new(RtxConfig {
            ssrc: 7,
            payload_types: vec![(120, 121)],
        });
        other.bind(Some(120));
        other.continue_from(&old);
        assert_eq!(
            other
                .wrap(media(2, b"x"), &mut buffer)
                .unwrap()
                .header
                .sequence_number,
            7
        );
    }

    #[test]
    fn payloads_share_one_allocation() {
        let mut buffer = RtxBuffer::default();
        let a = buffer.encapsulate(1, &[0; 1000]);
        let b = buffer.encapsulate(2, &[0; 1000]);
        assert_eq!(b.as_ptr(), a[a.len()..].as_ptr());
    }
}

//! FLV as the encoder writes it, cut into tags: the 9-byte file header, then tags of an
//! 11-byte header (type, data size, timestamp, stream id), their data and a 4-byte previous
//! tag size. What a destination needs to start mid-stream is kept aside: the header, the
//! `onMetaData` script tag and the AVC and AAC sequence headers ([`Prelude`]).
//!
//! Written by hand: the format is this small (Adobe FLV spec, "FLV File Format" and "FLV
//! Tags"), and the crates that read it parse the codec payloads too, which only the
//! destinations' servers need.

use bytes::{Buf, Bytes, BytesMut};

/// The FLV file header and the first PreviousTagSize.
pub(crate) const HEADER_LEN: usize = 9 + 4;
/// A tag header.
const TAG_HEADER_LEN: usize = 11;
/// The largest tag accepted (a broken stream is refused rather than buffered forever).
const MAX_TAG_DATA: usize = 8 * 1024 * 1024;

const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const SCRIPT: u8 = 18;

/// One FLV tag, header to previous tag size included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    /// The whole tag as written: header, data, previous tag size.
    pub bytes: Bytes,
}

/// What a tag is, for the fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagKind {
    /// `onMetaData`.
    Metadata,
    /// AVC decoder configuration (SPS/PPS).
    VideoConfig,
    /// AAC AudioSpecificConfig.
    AudioConfig,
    /// A video frame; `true` for a keyframe.
    Video(bool),
    /// An audio frame.
    Audio,
    /// Anything else.
    Other,
}

impl Tag {
    fn data(&self) -> &[u8] {
        &self.bytes[TAG_HEADER_LEN..self.bytes.len() - 4]
    }

    /// What the tag carries.
    pub(crate) fn kind(&self) -> TagKind {
        let data = self.data();
        match (self.bytes[0] & 0x1f, data) {
            (SCRIPT, _) => TagKind::Metadata,
            // AVC (codec id 7): packet type 0 is the sequence header.
            (VIDEO, [first, 0, ..]) if first & 0x0f == 7 => TagKind::VideoConfig,
            (VIDEO, [first, ..]) => TagKind::Video(first >> 4 == 1),
            // AAC (sound format 10): packet type 0 is the sequence header.
            (AUDIO, [first, 0, ..]) if first >> 4 == 10 => TagKind::AudioConfig,
            (AUDIO, _) => TagKind::Audio,
            _ => TagKind::Other,
        }
    }

    /// The tag's timestamp in milliseconds.
    pub(crate) fn timestamp(&self) -> u32 {
        let b = &self.bytes;
        u32::from_be_bytes([b[7], b[4], b[5], b[6]])
    }

    /// The same tag with its timestamp set to `ms`.
    pub(crate) fn with_timestamp(&self, ms: u32) -> Bytes {
        let mut out = BytesMut::from(&self.bytes[..]);
        let [ext, a, b, c] = ms.to_be_bytes();
        out[4] = a;
        out[5] = b;
        out[6] = c;
        out[7] = ext;
        out.freeze()
    }
}

/// Cuts a byte stream into the header and tags.
#[derive(Debug, Default)]
pub(crate) struct FlvReader {
    buf: BytesMut,
    header: Option<Bytes>,
}

/// The stream is not FLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an FLV stream: {0}")]
pub(crate) struct FlvError(&'static str);

impl FlvReader {
    /// Takes more bytes of the stream.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The file header, once read.
    pub(crate) fn header(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    /// The next complete tag, if the bytes so far hold one.
    pub(crate) fn next_tag(&mut self) -> Result<Option<Tag>, FlvError> {
        if self.header.is_none() {
            if self.buf.len() < HEADER_LEN {
                return Ok(None);
            }
            if &self.buf[..3] != b"FLV" {
                return Err(FlvError("no FLV signature"));
            }
            let offset = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
            if offset != 9 {
                return Err(FlvError("unexpected header size"));
            }
            self.header = Some(self.buf.split_to(HEADER_LEN).freeze());
        }
        if self.buf.len() < TAG_HEADER_LEN {
            return Ok(None);
        }
        let size = u32::from_be_bytes([0, self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if size > MAX_TAG_DATA {
            return Err(FlvError("tag too large"));
        }
        let total = TAG_HEADER_LEN + size + 4;
        if self.buf.len() < total {
            return Ok(None);
        }
        let bytes = self.buf.split_to(total).freeze();
        let mut tail = &bytes[total - 4..];
        if tail.get_u32() as usize != TAG_HEADER_LEN + size {
            return Err(FlvError("previous tag size does not match"));
        }
        Ok(Some(Tag { bytes }))
    }
}

/// What a destination is sent before its first keyframe: the file header, the metadata and
/// the codec configurations, each as the encoder last wrote it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prelude {
    pub header: Option<Bytes>,
    pub metadata: Option<Tag>,
    pub video_config: Option<Tag>,
    pub audio_config: Option<Tag>,
}

impl Prelude {
    /// Keeps `tag` if it is part of the prelude; says whether it was.
    pub(crate) fn keep(&mut self, tag: &Tag) -> bool {
        let slot = match tag.kind() {
            TagKind::Metadata => &mut self.metadata,
            TagKind::VideoConfig => &mut self.video_config,
            TagKind::AudioConfig => &mut self.audio_config,
            _ => return false,
        };
        *slot = Some(tag.clone());
        true
    }

    /// The header and the kept tags, every timestamp zero.
    pub(crate) fn bytes(&self) -> Option<Vec<u8>> {
        let mut out = self.header.as_ref()?.to_vec();
        for tag in [&self.metadata, &self.video_config, &self.audio_config]
            .into_iter()
            .flatten()
        {
            out.extend_from_slice(&tag.with_timestamp(0));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: u8, ms: u32, data: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        let [ext, a, b, c] = ms.to_be_bytes();
        out.extend_from_slice(&[a, b, c, ext, 0, 0, 0]);
        out.extend_from_slice(data);
        out.extend_from_slice(&((TAG_HEADER_LEN + data.len()) as u32).to_be_bytes());
        out
    }

    fn header() -> Vec<u8> {
        let mut out = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
        out.extend_from_slice(&[0, 0, 0, 0]);
        out
    }

    #[test]
    fn tags_are_cut_and_classified_whatever_the_chunking() {
        let mut stream = header();
        stream.extend(tag(SCRIPT, 0, b"\x02\x00\x0aonMetaData"));
        stream.extend(tag(VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 2]));
        stream.extend(tag(AUDIO, 0, &[0xaf, 0, 0x11, 0x90]));
        stream.extend(tag(VIDEO, 0x0100_0020, &[0x17, 1, 0, 0, 0, 9]));
        stream.extend(tag(VIDEO, 0x0100_0040, &[0x27, 1, 0, 0, 0, 9]));
        stream.extend(tag(AUDIO, 23, &[0xaf, 1, 7, 7]));
        for chunk in [1, 5, 13, 1000] {
            let mut reader = FlvReader::default();
            let mut kinds = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.extend(piece);
                while let Some(tag) = reader.next_tag().expect("valid") {
                    kinds.push((tag.kind(), tag.timestamp()));
                }
            }
            assert_eq!(
                kinds,
                [
                    (TagKind::Metadata, 0),
                    (TagKind::VideoConfig, 0),
                    (TagKind::AudioConfig, 0),
                    (TagKind::Video(true), 0x0100_0020),
                    (TagKind::Video(false), 0x0100_0040),
                    (TagKind::Audio, 23),
                ]
            );
            assert_eq!(reader.header().map(|h| h.len()), Some(HEADER_LEN));
        }
    }

    #[test]
    fn a_timestamp_is_rewritten_in_place() {
        let mut reader = FlvReader::default();
        reader.extend(&header());
        reader.extend(&tag(VIDEO, 5, &[0x27, 1, 0, 0, 0, 9]));
        let tag = reader.next_tag().expect("valid").expect("a tag");
        let moved = Tag {
            bytes: tag.with_timestamp(0x0200_0001),
        };
        assert_eq!(moved.timestamp(), 0x0200_0001);
        assert_eq!(moved.kind(), TagKind::Video(false));
    }

    #[test]
    fn garbage_is_refused_not_buffered() {
        let mut reader = FlvReader::default();
        reader.extend(b"RIFF\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
        assert!(reader.next_tag().is_err());
        let mut reader = FlvReader::default();
        reader.extend(&header());
        reader.extend(&[VIDEO, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert!(reader.next_tag().is_err());
        let mut reader = FlvReader::default();
        let mut bad = tag(VIDEO, 5, &[0x27, 1]);
        let n = bad.len();
        bad[n - 1] ^= 1;
        reader.extend(&header());
        reader.extend(&bad);
        assert!(reader.next_tag().is_err());
    }

    #[test]
    fn the_prelude_keeps_the_latest_configuration() {
        let mut reader = FlvReader::default();
        reader.extend(&header());
        reader.extend(&tag(VIDEO, 0, &[0x17, 0, 0, 0, 0, 1]));
        reader.extend(&tag(VIDEO, 40, &[0x17, 0, 0, 0, 0, 2]));
        let mut prelude = Prelude::default();
        while let Some(tag) = reader.next_tag().expect("valid") {
            prelude.header = reader.header().cloned();
            assert!(prelude.keep(&tag));
        }
        let bytes = prelude.bytes().expect("header known");
        assert_eq!(bytes.len(), HEADER_LEN + TAG_HEADER_LEN + 6 + 4);
        assert_eq!(bytes[HEADER_LEN + TAG_HEADER_LEN + 5], 2);
    }
}

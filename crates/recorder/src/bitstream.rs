//! Just enough of each codec's bitstream to record it: is this frame a keyframe, how large
//! are its pictures, how long does an Opus packet play, and the H264 parameter sets that
//! become the Matroska `avcC` CodecPrivate. Also a sanity check per frame, so a frame that
//! was reassembled wrong is treated like a lost one instead of being written.
//!
//! Written by hand because each answer is a handful of header bits: the crates that parse
//! these formats fully (e.g. `h264-reader`) would add dependencies to read two numbers.

use bytes::{BufMut, Bytes, BytesMut};
use directo_sfu::Codec;

/// What the recorder needs to know about one reassembled video frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct VideoFrameInfo {
    /// The frame can be decoded without any earlier frame.
    pub keyframe: bool,
    /// Picture size, when the frame carries it (keyframes do).
    pub size: Option<(u32, u32)>,
    /// H264 only: the parameter sets found in the frame.
    pub sps: Option<Bytes>,
    /// H264 only: the picture parameter set found in the frame.
    pub pps: Option<Bytes>,
}

/// Inspects a reassembled video frame; `None` if it is malformed and must not be written.
/// H264 frames are expected in AVCC form (4-byte big-endian length before each NAL unit).
pub(crate) fn inspect_video(codec: Codec, frame: &[u8]) -> Option<VideoFrameInfo> {
    match codec {
        Codec::Vp8 => inspect_vp8(frame),
        Codec::Vp9 => inspect_vp9(frame),
        Codec::H264 => inspect_h264(frame),
        Codec::Opus => None,
    }
}

fn inspect_vp8(frame: &[u8]) -> Option<VideoFrameInfo> {
    if frame.len() < 3 {
        return None;
    }
    let tag = u32::from(frame[0]) | u32::from(frame[1]) << 8 | u32::from(frame[2]) << 16;
    let first_partition = (tag >> 5) as usize;
    let keyframe = tag & 1 == 0;
    let header = if keyframe { 10 } else { 3 };
    if header + first_partition > frame.len() {
        return None;
    }
    if !keyframe {
        return Some(VideoFrameInfo::default());
    }
    if frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Some(VideoFrameInfo {
        keyframe: true,
        size: Some((width, height)),
        ..VideoFrameInfo::default()
    })
}

fn inspect_vp9(frame: &[u8]) -> Option<VideoFrameInfo> {
    let mut r = BitReader::new(frame);
    if r.bits(2)? != 2 {
        return None;
    }
    let profile = r.bit()? | r.bit()? << 1;
    if profile == 3 {
        r.bit()?;
    }
    if r.bit()? == 1 {
        // show_existing_frame: repeats an earlier picture, references nothing new.
        return Some(VideoFrameInfo::default());
    }
    if r.bit()? != 0 {
        return Some(VideoFrameInfo::default());
    }
    r.bits(2)?; // show_frame, error_resilient_mode
    if r.bits(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        r.bit()?;
    }
    let color_space = r.bits(3)?;
    if color_space != 7 {
        r.bit()?;
        if profile == 1 || profile == 3 {
            r.bits(3)?;
        }
    } else if profile == 1 || profile == 3 {
        r.bit()?;
    }
    let width = r.bits(16)? + 1;
    let height = r.bits(16)? + 1;
    Some(VideoFrameInfo {
        keyframe: true,
        size: Some((width, height)),
        ..VideoFrameInfo::default()
    })
}

/// Iterates the NAL units of an AVCC frame; `None` in place of a unit whose length is wrong.
fn avcc_units(frame: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut rest = frame;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() < 4 {
            rest = &[];
            return Some(None);
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len == 0 || rest.len() - 4 < len {
            rest = &[];
            return Some(None);
        }
        let unit = &rest[4..4 + len];
        rest = &rest[4 + len..];
        Some(Some(unit))
    })
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

fn inspect_h264(frame: &[u8]) -> Option<VideoFrameInfo> {
    let mut info = VideoFrameInfo::default();
    let mut slices = 0;
    for unit in avcc_units(frame) {
        let unit = unit?;
        if unit[0] & 0x80 != 0 {
            return None;
        }
        let kind = unit[0] & 0x1f;
        if (kind == 1 || kind == NAL_IDR)
            && slices == 0
            && unit.get(1).is_none_or(|b| b & 0x80 == 0)
        {
            // The picture's first slice must start at macroblock 0 (ue(v) "1" bit): if not,
            // the packets carrying its beginning were lost.
            return None;
        }
        match kind {
            1 => slices += 1,
            NAL_IDR => {
                slices += 1;
                info.keyframe = true;
            }
            NAL_SPS => {
                info.size = sps_size(unit);
                info.sps = Some(Bytes::copy_from_slice(unit));
            }
            NAL_PPS => info.pps = Some(Bytes::copy_from_slice(unit)),
            _ => {}
        }
    }
    (slices > 0).then_some(info)
}

/// The `AVCDecoderConfigurationRecord` (ISO 14496-15) for one SPS and one PPS.
pub(crate) fn avc_decoder_configuration(sps: &[u8], pps: &[u8]) -> Option<Bytes> {
    if sps.len() < 4 || sps.len() > usize::from(u16::MAX) || pps.len() > usize::from(u16::MAX) {
        return None;
    }
    let mut out = BytesMut::with_capacity(11 + sps.len() + pps.len());
    out.put_u8(1);
    out.put_slice(&sps[1..4]); // profile, compatibility, level
    out.put_u8(0xfc | 3); // 4-byte NAL lengths
    out.put_u8(0xe0 | 1);
    out.put_u16(sps.len() as u16);
    out.put_slice(sps);
    out.put_u8(1);
    out.put_u16(pps.len() as u16);
    out.put_slice(pps);
    Some(out.freeze())
}

/// Picture size from an H264 sequence parameter set (ITU-T H.264 7.3.2.1.1).
fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    // Emulation prevention bytes (00 00 03) are not part of the syntax.
    let mut rbsp = Vec::with_capacity(sps.len());
    let mut zeros = 0;
    for &b in sps.get(1..)? {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = BitReader::new(&rbsp);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?;
        }
        r.ue()?;
        r.ue()?;
        r.bit()?;
        if r.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()? {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?;
    let width_mbs = r.ue()? + 1;
    let height_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?;
    let mut width = width_mbs * 16;
    let mut height = height_units * 16 * (2 - frame_mbs_only);
    if r.bit()? == 1 {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (crop_x, crop_y) = match chroma_format {
            0 => (1, 2 - frame_mbs_only),
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        width = width.checked_sub(crop_x * (left + right))?;
        height = height.checked_sub(crop_y * (top + bottom))?;
    }
    Some((width, height))
}

/// Samples (at 48 kHz) one Opus packet plays (RFC 6716 section 3.1); `None` if malformed.
pub(crate) fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    Some(frame * frames).filter(|&samples| samples > 0 && samples <= 5760)
}

/// Reads bits most-significant first, with Exp-Golomb codes for H264.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some(acc << 1 | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i64> {
        let v = i64::from(self.ue()?);
        Some(if v % 2 == 1 { (v + 1) / 2 } else { -(v / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_durations_follow_the_toc() {
        assert_eq!(opus_packet_samples(&[0xfc, 0, 0]), Some(960)); // CELT 20 ms
        assert_eq!(opus_packet_samples(&[0x08 | 1, 0]), Some(1920)); // SILK 20 ms, 2 frames
        assert_eq!(opus_packet_samples(&[]), None);
    }

    #[test]
    fn vp8_keyframe_header_gives_size() {
        let mut frame = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        frame.resize(40, 0);
        let info = inspect_video(Codec::Vp8, &frame).expect("valid frame");
        assert!(info.keyframe);
        assert_eq!(info.size, Some((320, 240)));
        assert!(inspect_video(Codec::Vp8, &frame[..5]).is_none());
    }

    #[test]
    fn h264_sps_gives_size_and_truncated_units_are_rejected() {
        // 1280x720 baseline SPS from libx264.
        let sps = [
            0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x40, 0x00, 0x00, 0x03, 0x00,
            0x40, 0x00, 0x00, 0x0c, 0x83, 0xc6, 0x0c, 0xa8,
        ];
        assert_eq!(sps_size(&sps), Some((1280, 720)));
        let mut frame = Vec::new();
        frame.extend_from_slice(&(sps.len() as u32).to_be_bytes());
        frame.extend_from_slice(&sps);
        frame.extend_from_slice(&[0, 0, 0, 2, 0x65, 0x88]);
        let info = inspect_video(Codec::H264, &frame).expect("valid frame");
        assert!(info.keyframe);
        assert_eq!(info.size, Some((1280, 720)));
        frame.pop();
        assert!(inspect_video(Codec::H264, &frame).is_none());
    }
}

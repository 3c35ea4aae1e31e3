//! Media kinds, codecs and keyframe-request kinds: the small vocabulary every other module
//! of the forwarding core speaks. Owns the codec facts the forwarder needs (kind, RTP clock
//! rate, MIME type); it does not own SDP negotiation, which belongs to the media engine.

/// Whether a track carries sound or pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Sound (Opus).
    Audio,
    /// Pictures (VP8, VP9 or H264).
    Video,
}

/// A codec the SFU knows how to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus audio, 48 kHz RTP clock.
    Opus,
    /// VP8 video, 90 kHz RTP clock.
    Vp8,
    /// VP9 video, 90 kHz RTP clock.
    Vp9,
    /// H.264 video, 90 kHz RTP clock.
    H264,
}

impl Codec {
    /// The kind of media this codec carries.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Opus => MediaKind::Audio,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => MediaKind::Video,
        }
    }

    /// The RTP timestamp clock rate in Hz.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => 90_000,
        }
    }

    /// The MIME type as SDP and WebRTC APIs spell it, e.g. `video/VP8`.
    pub fn mime_type(self) -> &'static str {
        match self {
            Codec::Opus => "audio/opus",
            Codec::Vp8 => "video/VP8",
            Codec::Vp9 => "video/VP9",
            Codec::H264 => "video/H264",
        }
    }

    /// Parses a MIME type (`video/vp8`, `audio/OPUS`, ...), ignoring ASCII case.
    pub fn from_mime(mime: &str) -> Option<Codec> {
        [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264]
            .into_iter()
            .find(|codec| codec.mime_type().eq_ignore_ascii_case(mime))
    }
}

/// Which RTCP message asks the publisher for a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyframeRequestKind {
    /// Picture Loss Indication (RFC 4585).
    Pli,
    /// Full Intra Request (RFC 5104), which carries a sequence number.
    Fir,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_round_trip_ignores_case() {
        for codec in [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264] {
            assert_eq!(Codec::from_mime(codec.mime_type()), Some(codec));
            assert_eq!(
                Codec::from_mime(&codec.mime_type().to_ascii_uppercase()),
                Some(codec)
            );
        }
        assert_eq!(Codec::from_mime("video/vp8"), Some(Codec::Vp8));
        assert_eq!(Codec::from_mime("video/AV1"), None);
        assert_eq!(Codec::from_mime(""), None);
    }

    #[test]
    fn kinds_and_clock_rates() {
        assert_eq!(Codec::Opus.kind(), MediaKind::Audio);
        assert_eq!(Codec::H264.kind(), MediaKind::Video);
        assert_eq!(Codec::Opus.clock_rate(), 48_000);
        assert_eq!(Codec::Vp9.clock_rate(), 90_000);
    }
}

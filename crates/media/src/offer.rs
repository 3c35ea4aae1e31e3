//! Checks an SDP offer before a peer connection is built for it, so a bad offer gets an error
//! that says what was wrong and what would be accepted.

use directo_sfu::{Codec, MediaKind};
use rtc::sdp::SessionDescription;
use std::io::Cursor;

use crate::error::MediaError;
use crate::setup::ACCEPTED_VIDEO;

/// What an offer asks for, per kind.
#[derive(Debug, Default)]
pub(crate) struct OfferSummary {
    /// Codecs offered in the audio section, if there is one.
    pub(crate) audio: Option<Vec<Codec>>,
    /// Codecs offered in the video section, if there is one.
    pub(crate) video: Option<Vec<Codec>>,
    /// Whether the offer carries a data channel section.
    pub(crate) data: bool,
    /// Simulcast layers the video section sends (`a=rid:<id> send`); 0 without simulcast.
    pub(crate) video_layers: usize,
}

impl OfferSummary {
    /// The offered codecs of `kind`, if that kind is offered.
    pub(crate) fn codecs(&self, kind: MediaKind) -> Option<&[Codec]> {
        match kind {
            MediaKind::Audio => self.audio.as_deref(),
            MediaKind::Video => self.video.as_deref(),
        }
    }
}

/// Parse and check `sdp`: it must be an SDP with at least one audio or video section, each
/// offering a codec Directo forwards.
pub(crate) fn check_offer(sdp: &str) -> Result<OfferSummary, MediaError> {
    if sdp.trim().is_empty() {
        return Err(MediaError::InvalidSdp("the offer is empty".into()));
    }
    let parsed = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| MediaError::InvalidSdp(format!("the offer does not parse as SDP: {e}")))?;

    let mut summary = OfferSummary::default();
    for media in &parsed.media_descriptions {
        let codecs: Vec<Codec> = media
            .attributes
            .iter()
            .filter(|a| a.key == "rtpmap")
            .filter_map(|a| a.value.as_deref())
            .filter_map(|v| v.split_whitespace().nth(1))
            .filter_map(|enc| enc.split('/').next())
            .filter_map(|name| {
                let kind = match media.media_name.media.as_str() {
                    "audio" => "audio",
                    _ => "video",
                };
                Codec::from_mime(&format!("{kind}/{name}"))
            })
            .collect();
        match media.media_name.media.as_str() {
            "audio" => summary.audio.get_or_insert_with(Vec::new).extend(codecs),
            "video" => {
                summary.video.get_or_insert_with(Vec::new).extend(codecs);
                summary.video_layers += media
                    .attributes
                    .iter()
                    .filter(|a| a.key == "rid")
                    .filter_map(|a| a.value.as_deref())
                    .filter(|v| v.split_whitespace().nth(1) == Some("send"))
                    .count();
            }
            "application" => summary.data = true,
            _ => {}
        }
    }

    if summary.audio.is_none() && summary.video.is_none() {
        return Err(MediaError::InvalidSdp(
            "the offer has no audio or video section".into(),
        ));
    }
    if summary.video.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(MediaError::UnsupportedCodec(format!(
            "the offer's video section has no codec Directo forwards; accepted: {ACCEPTED_VIDEO}"
        )));
    }
    if summary.audio.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(MediaError::UnsupportedCodec(
            "the offer's audio section has no codec Directo forwards; accepted: audio/opus".into(),
        ));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 45\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:45 AV1/90000\r\n";

    #[test]
    fn accepts_opus_and_vp8() {
        let summary = check_offer(OFFER).unwrap();
        assert_eq!(summary.audio.unwrap(), vec![Codec::Opus]);
        assert_eq!(summary.video.unwrap(), vec![Codec::Vp8]);
    }

    #[test]
    fn rejects_empty_and_garbage() {
        assert!(matches!(check_offer("  "), Err(MediaError::InvalidSdp(_))));
        assert!(matches!(
            check_offer("hello"),
            Err(MediaError::InvalidSdp(_))
        ));
    }

    #[test]
    fn rejects_video_without_a_forwardable_codec() {
        let only_av1 = OFFER.replace("a=rtpmap:96 VP8/90000\r\n", "");
        match check_offer(&only_av1) {
            Err(MediaError::UnsupportedCodec(msg)) => assert!(msg.contains("video/VP8")),
            other => panic!("expected unsupported codec, got {other:?}"),
        }
    }
}

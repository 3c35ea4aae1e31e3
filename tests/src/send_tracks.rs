//! A publishing client's media tracks: one sendonly Opus track and one sendonly video track on
//! its peer connection, with fresh SSRCs, as both test publishers ([`crate::Publisher`] and
//! [`crate::MediaPublisher`]) add them before their offer.

use crate::error::Result;
use crate::peer::opus_codec;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::Arc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::PeerConnection;

/// The two tracks a publisher writes its RTP to.
pub(crate) struct SendTracks {
    pub(crate) audio: Arc<TrackLocalStaticRTP>,
    pub(crate) video: Arc<TrackLocalStaticRTP>,
    pub(crate) audio_ssrc: u32,
    pub(crate) video_ssrc: u32,
}

impl SendTracks {
    /// Adds the Opus track and a `video_codec` track to `pc`, each in a media stream of its own
    /// named `{stream_prefix}-{ssrc}`.
    pub(crate) async fn add(
        pc: &Arc<dyn PeerConnection>,
        video_codec: RTCRtpCodec,
        stream_prefix: &str,
    ) -> Result<Self> {
        // Odd and distinct from the audio SSRC, so the two never collide.
        let video_ssrc = rand::random::<u32>() | 1;
        let audio_ssrc = video_ssrc ^ 0x5a5a_0000;
        let audio = Arc::new(TrackLocalStaticRTP::new(local_track(
            stream_prefix,
            RtpCodecKind::Audio,
            audio_ssrc,
            opus_codec(),
            "audio",
        )));
        let video = Arc::new(TrackLocalStaticRTP::new(local_track(
            stream_prefix,
            RtpCodecKind::Video,
            video_ssrc,
            video_codec,
            "video",
        )));
        for track in [&audio, &video] {
            pc.add_transceiver_from_track(
                Arc::clone(track) as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    ..Default::default()
                }),
            )
            .await?;
        }
        Ok(SendTracks {
            audio,
            video,
            audio_ssrc,
            video_ssrc,
        })
    }
}

fn local_track(
    stream_prefix: &str,
    kind: RtpCodecKind,
    ssrc: u32,
    codec: RTCRtpCodec,
    label: &str,
) -> MediaStreamTrack {
    MediaStreamTrack::new(
        format!("{stream_prefix}-{ssrc:08x}"),
        format!("{label}-{ssrc:08x}"),
        label.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )
}

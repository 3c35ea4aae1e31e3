//! A viewer that did not negotiate the publisher's codec is told once, gets nothing on that
//! track (and costs the publisher no keyframe requests), while its other track flows.

mod common;

use std::time::Duration;

use common::*;
use directo_sfu::{Codec, MediaKind, Output, Stream};

#[test]
fn reported_once_and_nothing_forwarded() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), t0);
    let mut tracks = viewer_tracks(0xa0, 0xb0);
    tracks[1].payload_types = vec![(Codec::H264, 102)];
    stream.add_subscriber(10, tracks, t0);
    let joined = drain(&mut stream);
    assert_eq!(
        joined,
        vec![Output::CodecMismatch {
            subscriber: 10,
            codec: Codec::Vp8
        }]
    );

    let mut outputs = feed(&mut stream, 1, publisher.video_frame(true, 2), t0);
    outputs.extend(feed(&mut stream, 1, vec![publisher.audio_packet()], t0));
    outputs.extend(run_timers(&mut stream, t0, t0 + Duration::from_secs(2)));
    assert!(rtp_for(&outputs, 10, MediaKind::Video).is_empty());
    assert_eq!(rtp_for(&outputs, 10, MediaKind::Audio).len(), 1);
    assert!(keyframe_requests(&outputs).is_empty());

    // The same codec again after a reconnect is not reported twice.
    let again = Publisher::new(1, 0x3333, 0x4444, 1, 1);
    stream.set_publisher(1, again.tracks(), t0 + Duration::from_secs(3));
    assert!(
        !drain(&mut stream)
            .iter()
            .any(|o| matches!(o, Output::CodecMismatch { .. }))
    );
}

//! Keyframe requests to the publisher: every viewer's need collapses into one request per
//! [`KEYFRAME_REQUEST_INTERVAL`] for the track, repeated while a viewer still waits for its first keyframe, and
//! stopped once a keyframe arrives.

mod common;

use std::time::Duration;

use common::*;
use directo_sfu::{KEYFRAME_REQUEST_INTERVAL, KeyframeRequestKind, Stream};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn twenty_joining_viewers_cause_one_pli() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), t0);
    assert!(
        keyframe_requests(&drain(&mut stream)).is_empty(),
        "nobody watches yet"
    );

    // Twenty viewers arrive within one interval.
    let interval = KEYFRAME_REQUEST_INTERVAL;
    let step = interval / 40;
    let mut outputs = Vec::new();
    for i in 0..20u32 {
        stream.add_subscriber(
            100 + u64::from(i),
            viewer_tracks(i, 1000 + i),
            t0 + step * i,
        );
        outputs.extend(drain(&mut stream));
    }
    outputs.extend(run_timers(
        &mut stream,
        t0 + step * 20,
        t0 + interval - ms(10),
    ));
    let requests = keyframe_requests(&outputs);
    assert_eq!(requests, vec![(1, 0x1111, KeyframeRequestKind::Pli, 0)]);

    // Still nobody has a keyframe: the request repeats, once per interval.
    assert_eq!(stream.poll_timeout(), Some(t0 + interval));
    let repeated = run_timers(&mut stream, t0 + interval, t0 + 2 * interval - ms(10));
    assert_eq!(keyframe_requests(&repeated).len(), 1);

    // The keyframe arrives: every viewer starts and the requests stop.
    let arrival = t0 + 2 * interval - ms(5);
    let outputs = feed(&mut stream, 1, publisher.video_frame(true, 2), arrival);
    assert_eq!(outputs.len(), 40);
    assert!(keyframe_requests(&run_timers(&mut stream, arrival, arrival + ms(3000))).is_empty());
    assert_eq!(stream.poll_timeout(), None);
    assert_eq!(stream.stats(arrival).keyframe_requests_sent, 2);
}

#[test]
fn viewer_plis_are_collapsed_and_throttled() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), t0);
    for viewer in 10..15 {
        stream.add_subscriber(
            viewer,
            viewer_tracks(viewer as u32, 100 + viewer as u32),
            t0,
        );
    }
    feed(&mut stream, 1, publisher.video_frame(true, 2), t0 + ms(10));
    drain(&mut stream);

    let t1 = t0 + ms(1000);
    for viewer in 10..15 {
        stream.on_keyframe_request(viewer, t1);
    }
    assert_eq!(keyframe_requests(&drain(&mut stream)).len(), 1);
    stream.on_keyframe_request(12, t1 + ms(100));
    assert!(keyframe_requests(&drain(&mut stream)).is_empty());
    // The request held back by the throttle goes out when the interval ends, then no more.
    let outputs = run_timers(&mut stream, t1 + ms(110), t1 + ms(2000));
    assert_eq!(keyframe_requests(&outputs).len(), 1);
}

#[test]
fn a_keyframe_cancels_a_held_back_request() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(1, 2), t0);
    feed(&mut stream, 1, publisher.video_frame(true, 2), t0);
    stream.on_keyframe_request(10, t0 + ms(100));
    assert!(keyframe_requests(&drain(&mut stream)).is_empty());
    feed(&mut stream, 1, publisher.video_frame(true, 2), t0 + ms(200));
    assert!(keyframe_requests(&run_timers(&mut stream, t0 + ms(200), t0 + ms(2000))).is_empty());
}

#[test]
fn fir_requests_carry_increasing_sequence_numbers() {
    let t0 = start();
    let mut stream = Stream::new();
    let publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks_with(KeyframeRequestKind::Fir), t0);
    stream.add_subscriber(10, viewer_tracks(1, 2), t0);
    let mut outputs = drain(&mut stream);
    // Requests at 0, 1 and 2 intervals while the viewer waits.
    outputs.extend(run_timers(
        &mut stream,
        t0,
        t0 + KEYFRAME_REQUEST_INTERVAL * 5 / 2,
    ));
    let requests = keyframe_requests(&outputs);
    assert_eq!(requests.len(), 3);
    for (i, (publisher, ssrc, kind, fir_seq)) in requests.into_iter().enumerate() {
        assert_eq!(
            (publisher, ssrc, kind),
            (1, 0x1111, KeyframeRequestKind::Fir)
        );
        assert_eq!(fir_seq, i as u8);
    }
}

#[test]
fn a_new_publisher_is_asked_for_a_keyframe() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut first = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, first.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(1, 2), t0);
    feed(&mut stream, 1, first.video_frame(true, 2), t0);
    drain(&mut stream);

    let second = Publisher::new(2, 0x3333, 0x4444, 9, 9);
    stream.set_publisher(2, second.tracks(), t0 + ms(100));
    let requests = keyframe_requests(&drain(&mut stream));
    assert_eq!(requests, vec![(2, 0x3333, KeyframeRequestKind::Pli, 0)]);
}

#[test]
fn internal_requests_share_the_throttle_and_stop_at_the_keyframe() {
    // The recorder asks for a keyframe (it lost a packet): one PLI, collapsed with the
    // viewers' requests and throttled like them, and nothing more once a keyframe came.
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.request_keyframe(t0);
    stream.request_keyframe(t0 + ms(10));
    stream.on_keyframe_request(7, t0 + ms(20)); // an unknown viewer changes nothing
    let outputs = run_timers(
        &mut stream,
        t0 + ms(30),
        t0 + KEYFRAME_REQUEST_INTERVAL - ms(10),
    );
    let mut all = drain(&mut stream);
    all.extend(outputs);
    assert_eq!(
        keyframe_requests(&all).len(),
        1,
        "one request for three asks"
    );

    let after = t0 + KEYFRAME_REQUEST_INTERVAL + ms(100);
    stream.request_keyframe(after);
    let later = run_timers(&mut stream, after, after + ms(100));
    let mut later_all = drain(&mut stream);
    later_all.extend(later);
    assert_eq!(
        keyframe_requests(&later_all).len(),
        1,
        "a new ask after the interval"
    );

    feed(
        &mut stream,
        1,
        publisher.video_frame(true, 2),
        after + ms(150),
    );
    assert!(
        keyframe_requests(&run_timers(&mut stream, after + ms(200), after + ms(3000))).is_empty()
    );
}

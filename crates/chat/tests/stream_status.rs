//! Members hear whether the stream is live from the chat they are in: a `stream.status` when
//! it goes live or offline (or its tracks or recording change), one right after the history
//! when they join, and the number of viewers watching its media in the throttled
//! `presence`, next to the number in the chat.

mod common;

use common::*;
use directo_chat::{PRESENCE_INTERVAL, StreamState};
use signaling_proto::{ChatRole, ChatServerMessage, TrackInfo};

fn live(watching: usize) -> StreamState {
    StreamState {
        live: true,
        tracks: vec![
            TrackInfo {
                kind: "audio".into(),
                codec: "audio/opus".into(),
                layers: Vec::new(),
            },
            TrackInfo {
                kind: "video".into(),
                codec: "video/VP8".into(),
                layers: Vec::new(),
            },
        ],
        recording: true,
        watching,
    }
}

fn offline(watching: usize) -> StreamState {
    StreamState {
        watching,
        ..StreamState::default()
    }
}

/// The `stream.status` messages `id` received: (live, recording).
fn statuses(h: &Harness, id: &str) -> Vec<(bool, bool)> {
    h.inboxes[id]
        .iter()
        .filter_map(|m| match m {
            ChatServerMessage::StreamStatus {
                live, recording, ..
            } => Some((*live, *recording)),
            _ => None,
        })
        .collect()
}

/// The `presence` messages `id` received: (in the chat, watching).
fn presences(h: &Harness, id: &str) -> Vec<(usize, Option<usize>)> {
    h.inboxes[id]
        .iter()
        .filter_map(|m| match m {
            ChatServerMessage::Presence { viewers, watching } => Some((*viewers, *watching)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_joiner_hears_the_status_right_after_the_history() {
    let mut h = Harness::new();
    h.set_stream(live(1));
    h.join("v1", "Ana", ChatRole::Viewer);
    let kinds: Vec<&str> = h.inboxes["v1"]
        .iter()
        .map(|m| match m {
            ChatServerMessage::History { .. } => "history",
            ChatServerMessage::StreamStatus { .. } => "status",
            ChatServerMessage::Presence { .. } => "presence",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["history", "status", "presence"]);
    match &h.inboxes["v1"][1] {
        ChatServerMessage::StreamStatus {
            live,
            tracks,
            recording,
        } => {
            assert!(*live);
            assert!(*recording);
            assert_eq!(tracks.len(), 2);
        }
        other => panic!("expected stream.status, got {other:?}"),
    }
    assert_eq!(presences(&h, "v1"), [(1, Some(1))]);
}

#[test]
fn going_live_and_offline_reaches_every_member_once() {
    let mut h = Harness::new();
    h.set_stream(offline(0));
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    assert_eq!(statuses(&h, "v1"), [(false, false)]);

    h.set_stream(live(2));
    // The same state again (the driver re-reports on every refresh) says nothing new.
    h.set_stream(live(2));
    h.advance(secs(2));
    h.set_stream(offline(2));
    for member in ["v1", "v2"] {
        assert_eq!(
            statuses(&h, member),
            [(false, false), (true, true), (false, false)],
            "{member}"
        );
    }
}

#[test]
fn a_member_who_joined_before_the_stream_was_reported_hears_it_then() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    assert!(statuses(&h, "v1").is_empty());
    assert_eq!(presences(&h, "v1"), [(1, None)]);
    h.advance(secs(2));
    h.set_stream(live(3));
    assert_eq!(statuses(&h, "v1"), [(true, true)]);
    assert_eq!(presences(&h, "v1"), [(1, None), (1, Some(3))]);
}

#[test]
fn media_viewers_ride_on_the_throttled_presence() {
    let mut h = Harness::new();
    h.set_stream(live(0));
    h.join("host", "Host", ChatRole::Presenter);
    assert_eq!(presences(&h, "host"), [(0, Some(0))]);

    // A crowd arrives over WHEP within the interval, most of it without chat.
    for watching in 1..=40 {
        h.set_stream(live(watching));
    }
    h.join("v1", "Ana", ChatRole::Viewer);
    assert_eq!(presences(&h, "host"), [(0, Some(0))], "held back");
    assert_eq!(
        presences(&h, "v1"),
        [(1, Some(40))],
        "a joiner learns it at once"
    );

    h.advance(PRESENCE_INTERVAL);
    assert_eq!(presences(&h, "host"), [(0, Some(0)), (1, Some(40))]);
    assert_eq!(h.room.poll_timeout(), None);

    // Only the media audience changes: presence still goes out.
    h.advance(secs(2));
    h.set_stream(live(39));
    assert_eq!(presences(&h, "host").last(), Some(&(1, Some(39))));
    assert_eq!(
        statuses(&h, "host"),
        [(true, true)],
        "no status for a count"
    );
}

#[test]
fn tracks_changing_while_live_are_announced() {
    let mut h = Harness::new();
    h.set_stream(live(1));
    h.join("v1", "Ana", ChatRole::Viewer);
    let mut simulcast = live(1);
    simulcast.tracks[1].layers = vec!["q".into(), "h".into(), "f".into()];
    h.set_stream(simulcast);
    let last = h.inboxes["v1"]
        .iter()
        .rev()
        .find_map(|m| match m {
            ChatServerMessage::StreamStatus { tracks, .. } => Some(tracks.clone()),
            _ => None,
        })
        .expect("a stream.status");
    assert_eq!(last[1].layers, ["q", "h", "f"]);
    assert_eq!(statuses(&h, "v1").len(), 2);
}

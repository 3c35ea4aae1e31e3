//! Everyone hears the viewer count when it changes; a crowd joining at once becomes one
//! update a second, not one per viewer to every viewer.

mod common;

use common::*;
use directo_chat::PRESENCE_INTERVAL;
use signaling_proto::{ChatRole, ChatServerMessage};

fn presences(h: &Harness, id: &str) -> Vec<usize> {
    h.inboxes[id]
        .iter()
        .filter_map(|m| match m {
            ChatServerMessage::Presence { viewers, .. } => Some(*viewers),
            _ => None,
        })
        .collect()
}

#[test]
fn joins_and_leaves_reach_everyone() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    assert_eq!(presences(&h, "host"), [0]);
    h.advance(secs(2));
    h.join("v1", "Ana", ChatRole::Viewer);
    assert_eq!(presences(&h, "host"), [0, 1]);
    assert_eq!(presences(&h, "v1"), [1]);
    h.advance(secs(2));
    h.leave("v1");
    assert_eq!(presences(&h, "host"), [0, 1, 0]);
}

#[test]
fn a_crowd_is_announced_once_per_interval() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    for i in 0..100 {
        h.join(&format!("v{i}"), "Viewer", ChatRole::Viewer);
    }
    // Each joiner still learns the count on joining.
    assert_eq!(presences(&h, "v99"), [100]);
    assert_eq!(presences(&h, "host"), [0]);
    assert_eq!(h.room.poll_timeout(), Some(h.now + PRESENCE_INTERVAL));

    h.advance(PRESENCE_INTERVAL);
    assert_eq!(presences(&h, "host"), [0, 100]);
    assert_eq!(presences(&h, "v0"), [1, 100]);
    assert_eq!(h.room.poll_timeout(), None);
    assert_eq!(h.room.viewer_count(), 100);
    assert_eq!(h.room.member_count(), 101);
}

#[test]
fn the_presenter_is_not_a_viewer() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.advance(secs(2));
    h.join("host", "Host", ChatRole::Presenter);
    h.join("mod", "Mia", ChatRole::Moderator);
    h.advance(secs(2));
    assert_eq!(h.room.viewer_count(), 2);
    assert_eq!(presences(&h, "host"), [1, 2]);
}

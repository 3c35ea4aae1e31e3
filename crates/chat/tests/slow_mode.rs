//! Slow mode lets each viewer send one message per N seconds, even from a client that
//! ignores it; moderators and the presenter are exempt.

mod common;

use common::*;
use serde_json::json;
use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};

#[test]
fn one_message_per_interval_for_viewers() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.join("mod", "Mia", ChatRole::Moderator);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    h.take("v2");

    h.send("v1", json!({"type": "chat.slow", "seconds": 30}));
    assert_eq!(h.errors("v1"), [ChatErrorCode::Forbidden]);
    h.send("mod", json!({"type": "chat.slow", "seconds": 30}));
    assert_eq!(h.take("v2"), [ChatServerMessage::Slow { seconds: 30 }]);
    assert_eq!(h.room.slow_seconds(), 30);

    h.say("v1", "one");
    h.advance(secs(10));
    h.say("v1", "two");
    h.advance(secs(19));
    h.say("v1", "three");
    h.advance(secs(1));
    h.say("v1", "four");
    assert_eq!(h.texts("v2"), ["one", "four"]);
    assert_eq!(
        &h.errors("v1")[1..],
        [ChatErrorCode::SlowMode, ChatErrorCode::SlowMode]
    );

    // Staff are exempt (only the flood limit applies to them).
    for text in ["a", "b", "c"] {
        h.say("host", text);
        h.say("mod", text);
    }
    assert!(h.errors("host").is_empty());
    assert!(h.errors("mod").is_empty());

    // A new joiner learns the mode from the history.
    h.join("late", "Cy", ChatRole::Viewer);
    assert!(h.take("late").iter().any(|m| matches!(
        m,
        ChatServerMessage::History {
            slow_seconds: 30,
            ..
        }
    )));

    h.send("host", json!({"type": "chat.slow", "seconds": 0}));
    h.say("v2", "x");
    h.say("v2", "y");
    assert!(h.errors("v2").is_empty());

    h.send("host", json!({"type": "chat.slow", "seconds": 100_000}));
    assert_eq!(h.errors("host"), [ChatErrorCode::BadRequest]);
}

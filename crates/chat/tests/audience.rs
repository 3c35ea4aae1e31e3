//! Fifty viewers and a presenter: a viewer asks, the presenter replies, and everyone sees
//! the same messages in the same order, the reply naming the question and the presenter's
//! role.

mod common;

use common::*;
use signaling_proto::{ChatMessage, ChatRole};

#[test]
fn presenter_reply_reaches_everyone_in_the_same_order() {
    let mut h = Harness::new();
    h.join("presenter", "Host", ChatRole::Presenter);
    let viewers: Vec<String> = (0..50).map(|i| format!("viewer-{i}")).collect();
    for (i, id) in viewers.iter().enumerate() {
        h.join(id, &format!("Viewer {i}"), ChatRole::Viewer);
    }
    assert_eq!(h.room.viewer_count(), 50);

    h.say("viewer-3", "Which codec is this?");
    let question = h.messages("presenter")[0].clone();
    assert_eq!(question.from.role, ChatRole::Viewer);
    // Chatter from other viewers interleaves with the answer.
    h.say("viewer-7", "hello from 7");
    h.reply("presenter", &question.id, "VP8 for now");
    h.say("viewer-9", "thanks!");

    let reference: Vec<ChatMessage> = h.messages("presenter");
    let texts: Vec<&str> = reference.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Which codec is this?",
            "hello from 7",
            "VP8 for now",
            "thanks!"
        ]
    );
    let answer = &reference[2];
    assert_eq!(answer.from.role, ChatRole::Presenter);
    assert_eq!(answer.from.name, "Host");
    assert_eq!(answer.reply_to.as_deref(), Some(question.id.as_str()));
    for id in &viewers {
        assert_eq!(h.messages(id), reference, "{id} saw something else");
        assert!(h.errors(id).is_empty());
    }

    // Ids are unique and sort in the order messages were accepted.
    let mut ids: Vec<&str> = reference.iter().map(|m| m.id.as_str()).collect();
    let sorted = {
        let mut s = ids.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(ids, sorted);
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert!(reference.iter().all(|m| m.ts >= WALL_START_MS));
}

#[test]
fn a_late_joiner_gets_the_same_history() {
    let mut h = Harness::new();
    h.join("presenter", "Host", ChatRole::Presenter);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.say("v1", "first");
    h.say("presenter", "second");
    h.join("late", "Bo", ChatRole::Viewer);
    assert_eq!(h.history_texts("late"), ["first", "second"]);
}

#[test]
fn history_keeps_the_last_200() {
    let mut h = Harness::new();
    h.join("presenter", "Host", ChatRole::Presenter);
    for i in 0..250 {
        // Presenters are held to the flood limit too; space messages out.
        h.advance(secs(2));
        h.say("presenter", &format!("m{i}"));
    }
    assert!(h.errors("presenter").is_empty());
    h.join("late", "Bo", ChatRole::Viewer);
    let history = h.history_texts("late");
    assert_eq!(history.len(), directo_chat::HISTORY_LEN);
    assert_eq!(history.first().map(String::as_str), Some("m50"));
    assert_eq!(history.last().map(String::as_str), Some("m249"));
}

//! Nothing is lost: every event is in the stream's log file, and a room restored from it
//! after a restart has the same history (minus deleted messages), pin, slow mode, mutes and
//! bans. The export has every message, deleted ones marked.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::*;
use directo_chat::{ChatLog, Durability, JoinError, LogRecord, Output, Room};
use serde_json::json;
use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("directo-chat-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Appends what the harness persisted since record `from` to a real log file, as a
/// driver would have as it went.
fn append_since(log: &mut ChatLog, h: &Harness, from: usize) {
    for record in &h.log[from..] {
        log.append(record).unwrap();
    }
}

#[test]
fn a_restored_room_has_the_same_history_and_bans() {
    let dir = TempDir::new();
    let (mut log, records) = ChatLog::open(&dir.0, "launch", Durability::Sync).unwrap();
    assert!(records.is_empty());

    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.join("mod", "Mia", ChatRole::Moderator);
    h.try_join("troll", "Troll", ChatRole::Viewer, Some("203.0.113.9"))
        .unwrap();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.say("v1", "question?");
    let question = h.messages("host")[0].id.clone();
    h.reply("host", &question, "answer!");
    h.say("troll", "spam");
    let spam = h.messages("host")[2].id.clone();
    h.send("mod", json!({"type": "chat.delete", "id": spam}));
    h.send("mod", json!({"type": "user.ban", "user": "troll"}));
    h.send(
        "mod",
        json!({"type": "user.mute", "user": "v1", "minutes": 10}),
    );
    h.send("host", json!({"type": "chat.pin", "id": question}));
    h.send("host", json!({"type": "chat.slow", "seconds": 15}));
    append_since(&mut log, &h, 0);
    let before: Vec<_> = h.room.history().cloned().collect();
    drop(log);

    // "Restart": a new process reads the log back.
    let (_log, records) = ChatLog::open(&dir.0, "launch", Durability::Flush).unwrap();
    assert_eq!(records, h.log);
    let mut after = Harness::restore(records);
    assert_eq!(after.room.history().cloned().collect::<Vec<_>>(), before);
    assert_eq!(
        after.room.pinned().map(|m| m.text.as_str()),
        Some("question?")
    );
    assert_eq!(after.room.slow_seconds(), 15);

    after.join("late", "Cy", ChatRole::Viewer);
    assert_eq!(after.history_texts("late"), ["question?", "answer!"]);
    for (id, name, origin) in [
        ("troll", "Other", None),
        ("x1", "TROLL", None),
        ("x2", "Other", Some("203.0.113.9")),
    ] {
        assert_eq!(
            after.try_join(id, name, ChatRole::Viewer, origin),
            Err(JoinError::Banned)
        );
    }
    after.join("v1", "Ana", ChatRole::Viewer);
    after.say("v1", "can I talk?");
    assert_eq!(after.errors("v1"), [ChatErrorCode::Muted]);

    // The export has all three messages, the spam marked deleted.
    let exported = ChatLog::export(&dir.0, "launch").unwrap();
    let flags: Vec<(&str, bool)> = exported
        .iter()
        .map(|m| (m.message.text.as_str(), m.deleted))
        .collect();
    assert_eq!(
        flags,
        [("question?", false), ("answer!", false), ("spam", true)]
    );
    assert_eq!(
        exported[1].message.reply_to.as_deref(),
        Some(question.as_str())
    );
}

#[test]
fn mutes_end_on_the_wall_clock_across_a_restart() {
    let mut h = Harness::new();
    h.join("mod", "Mia", ChatRole::Moderator);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.send(
        "mod",
        json!({"type": "user.mute", "user": "v1", "minutes": 1}),
    );
    // The server comes back two minutes later.
    let later = UNIX_EPOCH + Duration::from_millis(WALL_START_MS) + Duration::from_secs(120);
    let mut after = Harness::at_wall(later, h.log.clone());
    after.join("v1", "Ana", ChatRole::Viewer);
    after.say("v1", "free again");
    assert!(after.errors("v1").is_empty());
}

#[test]
fn a_torn_last_line_is_skipped_and_sealed() {
    let dir = TempDir::new();
    let (mut log, _) = ChatLog::open(&dir.0, "s1", Durability::Flush).unwrap();
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.say("v1", "one");
    append_since(&mut log, &h, 0);
    let path = log.file_path().to_owned();
    drop(log);
    // A crash in the middle of the next write.
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"event":"message","id":"#);
    fs::write(&path, bytes).unwrap();

    let (mut log, records) = ChatLog::open(&dir.0, "s1", Durability::Flush).unwrap();
    assert_eq!(records.len(), 1);
    let restored = records.len();
    let mut h = Harness::restore(records);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.say("v1", "two");
    append_since(&mut log, &h, restored);
    let texts: Vec<String> = ChatLog::export(&dir.0, "s1")
        .unwrap()
        .into_iter()
        .map(|m| m.message.text)
        .collect();
    assert_eq!(texts, ["one", "two"]);
}

#[test]
fn log_paths_stay_inside_the_data_dir() {
    let dir = TempDir::new();
    assert_eq!(
        ChatLog::path(&dir.0, "launch").unwrap(),
        dir.0.join("chat").join("launch.jsonl")
    );
    for bad in ["../etc/passwd", "a/b", "", "x.jsonl"] {
        assert!(
            ChatLog::open(&dir.0, bad, Durability::Flush).is_err(),
            "{bad}"
        );
    }
    assert!(ChatLog::export(&dir.0, "never-used").unwrap().is_empty());
}

#[test]
fn every_event_is_persisted_before_it_is_delivered() {
    let now = Instant::now();
    let mut room = Room::new(now, UNIX_EPOCH + Duration::from_millis(WALL_START_MS));
    room.join("host", "Host", ChatRole::Presenter, None, now)
        .unwrap();
    room.join("v1", "Ana", ChatRole::Viewer, None, now).unwrap();
    while room.poll_output().is_some() {}

    room.handle_raw("v1", br#"{"type":"chat.send","text":"hi"}"#, now);
    let outputs: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
    let Some(Output::Persist(LogRecord::Message(persisted))) = outputs.first() else {
        panic!("first output is not the log record: {outputs:?}");
    };
    assert_eq!(
        outputs.get(1),
        Some(&Output::Broadcast(ChatServerMessage::Message(
            persisted.clone()
        )))
    );

    let id = persisted.id.clone();
    room.handle(
        "host",
        signaling_proto::ChatClientMessage::Delete { id: id.clone() },
        now,
    );
    let outputs: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
    assert!(matches!(&outputs[0], Output::Persist(LogRecord::Deleted { id: d, .. }) if *d == id));
    assert_eq!(
        outputs[1],
        Output::Broadcast(ChatServerMessage::Deleted { id })
    );
}

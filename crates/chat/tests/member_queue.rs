//! A member that reads too slowly loses its oldest chat, counted, and never holds up the
//! room or anyone else.

use std::time::{Duration, Instant, SystemTime};

use directo_chat::{MemberQueue, Output, Room};
use signaling_proto::{ChatRole, ChatServerMessage};

#[test]
fn a_slow_reader_keeps_the_newest_and_counts_the_rest() {
    let mut now = Instant::now();
    let mut room = Room::new(now, SystemTime::now());
    room.join("host", "Host", ChatRole::Presenter, None, now)
        .unwrap();
    room.join("slow", "Sleepy", ChatRole::Viewer, None, now)
        .unwrap();
    // The slow member's buffer; it never reads while the host talks.
    let mut slow: MemberQueue<String> = MemberQueue::new(10);
    let deliver = |room: &mut Room, slow: &mut MemberQueue<String>| {
        while let Some(output) = room.poll_output() {
            match output {
                Output::Broadcast(message) => {
                    slow.push(serde_json::to_string(&message).unwrap());
                }
                Output::Send { to, message } if to == "slow" => {
                    slow.push(serde_json::to_string(&message).unwrap());
                }
                _ => {}
            }
        }
    };
    deliver(&mut room, &mut slow);
    let before = slow.len() as u64;
    for i in 0..50 {
        now += Duration::from_secs(3);
        room.handle_raw(
            "host",
            format!(r#"{{"type":"chat.send","text":"m{i}"}}"#).as_bytes(),
            now,
        );
        deliver(&mut room, &mut slow);
    }
    assert_eq!(slow.len(), 10);
    assert_eq!(slow.dropped(), before + 40);
    let kept: Vec<String> = slow
        .drain()
        .map(|wire| match serde_json::from_str(&wire).unwrap() {
            ChatServerMessage::Message(m) => m.text,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kept.first().map(String::as_str), Some("m40"));
    assert_eq!(kept.last().map(String::as_str), Some("m49"));
}

//! A chat room fed arbitrary raw messages (what a data channel or `/ws` delivers) from a
//! presenter, a moderator and two viewers, with time passing, members leaving and
//! rejoining: `Room::handle_raw` never panics and the room keeps answering.
#![no_main]

mod common;

use common::Input;
use directo_chat::Room;
use libfuzzer_sys::fuzz_target;
use signaling_proto::ChatRole;
use std::time::{Duration, Instant, SystemTime};

const MEMBERS: [(&str, &str, ChatRole, &str); 4] = [
    ("p", "Presenter", ChatRole::Presenter, "192.0.2.1"),
    ("m", "Moderator", ChatRole::Moderator, "192.0.2.2"),
    ("a", "Ana", ChatRole::Viewer, "192.0.2.3"),
    ("b", "Bo", ChatRole::Viewer, "192.0.2.4"),
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut now = Instant::now();
    let mut room = Room::new(
        now,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
    );
    for (user, name, role, origin) in MEMBERS {
        let _ = room.join(user, name, role, Some(origin), now);
    }
    while let Some(op) = input.byte() {
        let (user, name, role, origin) = MEMBERS[usize::from(op % 4)];
        match op / 4 % 4 {
            0 | 1 => {
                let Some(raw) = input.chunk() else { break };
                room.handle_raw(user, raw, now);
            }
            2 => {
                let step = u64::from(input.byte().unwrap_or(0));
                now += Duration::from_millis(step * step * 10);
                room.handle_timeout(now);
            }
            _ => {
                room.leave(user, now);
                let _ = room.join(user, name, role, Some(origin), now);
            }
        }
        while room.poll_output().is_some() {}
    }
    let _ = room.history().count();
    let _ = room.pinned();
});

//! Chat fan-out: the time for one message to reach 1,000 members of a room — parsed and
//! checked by `directo_chat::Room`, serialized once, and queued for every member in its
//! bounded `MemberQueue` (what the chat service thread does before the engine sends it on the
//! data channels). Prints the median and p99 over many messages.

use directo_chat::{MEMBER_QUEUE_CAPACITY, MemberQueue, Output, Room};
use signaling_proto::ChatRole;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const MEMBERS: usize = 1000;
const MESSAGES: usize = 400;

fn main() {
    let start = Instant::now();
    let mut room = Room::new(start, SystemTime::now());
    let mut queues: HashMap<String, MemberQueue<Arc<str>>> = HashMap::new();
    for i in 0..MEMBERS {
        let id = format!("member-{i}");
        let role = if i == 0 {
            ChatRole::Presenter
        } else {
            ChatRole::Viewer
        };
        if room
            .join(
                &id,
                &format!("Viewer {i}"),
                role,
                Some(&format!("10.0.{}.{}", i / 250, i % 250)),
                start,
            )
            .is_err()
        {
            println!("chat bench failed: cannot join member {i}");
            return;
        }
        queues.insert(id, MemberQueue::new(MEMBER_QUEUE_CAPACITY));
    }
    drain(&mut room, &mut queues);
    let mut samples = Vec::with_capacity(MESSAGES);
    for n in 0..MESSAGES {
        // Different senders, spaced in time, so no rate limit applies.
        let sender = format!("member-{}", n % MEMBERS);
        let now = start + Duration::from_secs(3600 + n as u64 * 3);
        let text =
            format!(r#"{{"type":"chat.send","text":"question number {n} from the audience"}}"#);
        let t0 = Instant::now();
        room.handle_raw(&sender, text.as_bytes(), now);
        let delivered = drain(&mut room, &mut queues);
        samples.push(t0.elapsed());
        if delivered < MEMBERS {
            println!("chat bench: message {n} reached only {delivered} members");
        }
        for queue in queues.values_mut() {
            while queue.pop().is_some() {}
        }
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!(
        "chat: one message to {MEMBERS} members: p50 {:.0} µs, p99 {:.0} µs ({:.0} ns per member)",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        p50.as_secs_f64() * 1e9 / MEMBERS as f64
    );
}

/// Apply the room's outputs as the chat service does; returns how many deliveries were made.
fn drain(room: &mut Room, queues: &mut HashMap<String, MemberQueue<Arc<str>>>) -> usize {
    let mut delivered = 0;
    while let Some(output) = room.poll_output() {
        match output {
            Output::Broadcast(message) => {
                let Ok(text) = serde_json::to_string(&message) else {
                    continue;
                };
                let text: Arc<str> = Arc::from(text);
                for queue in queues.values_mut() {
                    queue.push(Arc::clone(&text));
                    delivered += 1;
                }
            }
            Output::Send { to, message } => {
                if let (Some(queue), Ok(text)) =
                    (queues.get_mut(&to), serde_json::to_string(&message))
                {
                    queue.push(Arc::from(text));
                }
            }
            Output::Persist(_) | Output::Disconnect { .. } => {}
        }
    }
    delivered
}

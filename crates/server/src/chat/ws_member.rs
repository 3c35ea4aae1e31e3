//! The outgoing queue of one `/ws` chat member: the chat thread pushes, the member's socket
//! task pops. Bounded: a slow socket loses its oldest chat, never holds up the chat thread.

use directo_chat::{MEMBER_QUEUE_CAPACITY, MemberQueue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The outgoing queue of one `/ws` chat member.
#[derive(Debug)]
pub struct WsMember {
    queue: Mutex<MemberQueue<Arc<str>>>,
    notify: Notify,
    closed: AtomicBool,
}

impl WsMember {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(WsMember {
            queue: Mutex::new(MemberQueue::new(MEMBER_QUEUE_CAPACITY)),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    pub(super) fn push(&self, text: Arc<str>) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.push(text);
        }
        self.notify.notify_one();
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// The next message for this member; `None` once the chat closed it (a ban).
    pub async fn next(&self) -> Option<Arc<str>> {
        loop {
            if let Some(text) = self.queue.lock().ok().and_then(|mut q| q.pop()) {
                return Some(text);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            self.notify.notified().await;
        }
    }
}

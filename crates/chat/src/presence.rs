//! Presence: the audience size members hear — viewers in the chat and, once the driver
//! reports the stream, viewers of its media — announced when it changes but at most once
//! per [`PRESENCE_INTERVAL`], so a crowd joining at once becomes one update a second rather
//! than one per viewer to every viewer.

use std::time::{Duration, Instant};

use signaling_proto::ChatServerMessage;

/// Presence goes out at most this often.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

/// The two audience figures a `presence` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Audience {
    /// Members who are not the presenter.
    pub(crate) in_chat: usize,
    /// Viewers of the media, when the driver reported them.
    pub(crate) watching: Option<usize>,
}

impl Audience {
    /// The `presence` message announcing these figures.
    pub(crate) fn message(self) -> ChatServerMessage {
        ChatServerMessage::Presence {
            viewers: self.in_chat,
            watching: self.watching,
        }
    }
}

/// What was last announced, and when the next announcement may go.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    announced: Option<Audience>,
    last_at: Option<Instant>,
    due: Option<Instant>,
}

impl Presence {
    /// Whether `audience` should be announced to everyone now: it differs from what was last
    /// announced and the interval has passed. When it differs but the interval has not
    /// passed, a timer is armed instead ([`Self::due`]).
    pub(crate) fn announce_now(&mut self, audience: Audience, now: Instant) -> bool {
        if self.announced == Some(audience) {
            return false;
        }
        if let Some(last) = self.last_at
            && now < last + PRESENCE_INTERVAL
        {
            self.due.get_or_insert(last + PRESENCE_INTERVAL);
            return false;
        }
        *self = Presence {
            announced: Some(audience),
            last_at: Some(now),
            due: None,
        };
        true
    }

    /// Whether the armed timer is due at `now` (it is then disarmed: the caller checks the
    /// audience again with [`Self::announce_now`]).
    pub(crate) fn take_due(&mut self, now: Instant) -> bool {
        if self.due.is_some_and(|due| due <= now) {
            self.due = None;
            true
        } else {
            false
        }
    }

    /// When a throttled announcement is due, if one is.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }
}

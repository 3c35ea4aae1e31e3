//! What a room asks its driver to do, drained with [`crate::Room::poll_output`].

use signaling_proto::{ChatServerMessage, UserId};

use crate::record::LogRecord;

/// One thing for the driver to do, in the order given.
///
/// Outputs come in order and the order matters: a [`Output::Persist`] comes before the
/// deliveries of its event, so appending it to the log before acting on the next output
/// means nothing is delivered that a restart would forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Append this record to the stream's chat log (flushed) before going on.
    Persist(LogRecord),
    /// Deliver to every member of the room (everyone joined and not yet left or
    /// disconnected). Serialize once, send the same text to all.
    Broadcast(ChatServerMessage),
    /// Deliver to one member.
    Send {
        /// The member.
        to: UserId,
        /// What to send.
        message: ChatServerMessage,
    },
    /// The member was banned: close its chat and its media. The room has already
    /// removed it; refuse it again with [`crate::Room::is_banned`].
    Disconnect {
        /// The member.
        user: UserId,
    },
}

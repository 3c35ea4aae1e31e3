//! The stream a room belongs to, as its driver reports it: whether it is live, its tracks,
//! whether it is recorded, and how many viewers watch its media. The room does not find
//! this out itself (it knows nothing of media); the driver passes it to
//! [`crate::Room::set_stream`] whenever it changes, and the room decides what members hear:
//! a `stream.status` when live, tracks or recording changed, and the media audience in the
//! throttled `presence`.

use signaling_proto::{ChatServerMessage, StreamInfo, TrackInfo};

/// What a room knows of its stream's media.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamState {
    /// Whether a publisher is sending now.
    pub live: bool,
    /// The publisher's tracks (empty when offline).
    pub tracks: Vec<TrackInfo>,
    /// Whether the stream is being recorded now.
    pub recording: bool,
    /// Viewers watching the media now, whether or not they are in the chat.
    pub watching: usize,
}

impl StreamState {
    /// The state of a stream as the API describes it; `None` (no publisher, no viewer, no
    /// recording) is an offline stream nobody watches.
    pub fn from_info(info: Option<&StreamInfo>) -> Self {
        match info {
            Some(info) => StreamState {
                live: info.live,
                tracks: info.tracks.clone(),
                recording: info.recording,
                watching: info.viewers,
            },
            None => StreamState::default(),
        }
    }

    /// Whether members would see a difference in `stream.status` between the two (the
    /// audience size goes out in `presence` instead).
    pub(crate) fn status_differs(&self, other: &StreamState) -> bool {
        self.live != other.live || self.tracks != other.tracks || self.recording != other.recording
    }

    /// The `stream.status` message for this state.
    pub(crate) fn status_message(&self) -> ChatServerMessage {
        ChatServerMessage::StreamStatus {
            live: self.live,
            tracks: self.tracks.clone(),
            recording: self.recording,
        }
    }
}

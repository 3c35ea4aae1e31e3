//! The open chat rooms and their lifecycle. A stream's room is opened — its log replayed, so
//! history, pin, slow mode, mutes and bans come back — when someone joins, moderates or asks
//! about a ban. While open it follows the engine's stream snapshot: each change is reported
//! to the room, which tells its members. Once the stream has ended (no publisher, no viewer,
//! no unfinished recording: absent from the snapshot), the room has no members and nothing
//! touched it for [`ROOM_LINGER`], the room and its log file are let go.
//!
//! The linger absorbs churn: a viewer reconnecting, or a ban check just before a session is
//! created, finds the room still open rather than replaying its log again.

use directo_chat::{ChatLog, Durability, Room, StreamState};
use signaling_proto::StreamInfo;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long an idle room of an ended stream stays open.
pub(super) const ROOM_LINGER: Duration = Duration::from_secs(10);

/// One open room: the room, its log file, and what its lifecycle needs.
pub(super) struct OpenRoom {
    pub(super) room: Room,
    pub(super) log: ChatLog,
    /// When a member joined, left, wrote, or the room was asked something.
    last_active: Instant,
    /// Since when the stream has been absent from the snapshot (`None`: present).
    absent_since: Option<Instant>,
}

impl OpenRoom {
    /// Whether the stream has been gone for the linger (its engine sessions are all closed).
    pub(super) fn stream_gone(&self, now: Instant) -> bool {
        self.absent_since
            .is_some_and(|since| now.saturating_duration_since(since) >= ROOM_LINGER)
    }

    /// Whether the room may be let go at `now`.
    fn releasable(&self, now: Instant) -> bool {
        self.stream_gone(now)
            && self.room.member_count() == 0
            && now.saturating_duration_since(self.last_active) >= ROOM_LINGER
    }
}

/// Every open room, and the engine's stream snapshot they follow.
pub(super) struct Rooms {
    data_dir: PathBuf,
    open: HashMap<String, OpenRoom>,
    snapshot: Arc<Vec<StreamInfo>>,
    /// In a cluster, the viewers of a stream on every node (this node being its chat
    /// authority): `presence` announces these instead of this node's.
    watching: HashMap<String, usize>,
}

impl Rooms {
    pub(super) fn new(data_dir: PathBuf, snapshot: Arc<Vec<StreamInfo>>) -> Self {
        Rooms {
            data_dir,
            open: HashMap::new(),
            snapshot,
            watching: HashMap::new(),
        }
    }

    /// `stream`'s room, opened (its log replayed) if it is not; `None` if its log cannot be
    /// opened. Counts as activity.
    pub(super) fn open(&mut self, stream: &str, now: Instant) -> Option<&mut OpenRoom> {
        if !self.open.contains_key(stream) {
            let (log, records) = match ChatLog::open(&self.data_dir, stream, Durability::Flush) {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::error!(%stream, error = %e, "cannot open the chat log");
                    return None;
                }
            };
            let mut room = Room::restore(records, now, SystemTime::now());
            let info = find(&self.snapshot, stream);
            room.set_stream(self.state(stream, info), now);
            // Nobody is in a room just opened: what it said on opening went to no one.
            while room.poll_output().is_some() {}
            tracing::debug!(%stream, "chat room opened");
            self.open.insert(
                stream.to_owned(),
                OpenRoom {
                    room,
                    log,
                    last_active: now,
                    absent_since: info.is_none().then_some(now),
                },
            );
        }
        let open = self.open.get_mut(stream)?;
        open.last_active = now;
        Some(open)
    }

    /// `stream`'s room if it is open. Counts as activity.
    pub(super) fn get_mut(&mut self, stream: &str, now: Instant) -> Option<&mut OpenRoom> {
        let open = self.open.get_mut(stream)?;
        open.last_active = now;
        Some(open)
    }

    /// `stream`'s room if it is open, without counting as activity (delivering its output).
    pub(super) fn peek_mut(&mut self, stream: &str) -> Option<&mut OpenRoom> {
        self.open.get_mut(stream)
    }

    /// The engine published a new snapshot: report it to every open room. Returns the rooms
    /// to drain.
    pub(super) fn follow(&mut self, snapshot: Arc<Vec<StreamInfo>>, now: Instant) -> Vec<String> {
        self.snapshot = snapshot;
        let mut touched = Vec::new();
        for (stream, open) in &mut self.open {
            let info = find(&self.snapshot, stream);
            match info {
                Some(_) => open.absent_since = None,
                None => {
                    open.absent_since.get_or_insert(now);
                }
            }
            let mut state = StreamState::from_info(info);
            if let Some(viewers) = self.watching.get(stream) {
                state.watching = *viewers;
            }
            open.room.set_stream(state, now);
            touched.push(stream.clone());
        }
        touched
    }

    /// The stream's state for its room, with the cluster's viewers when known.
    fn state(&self, stream: &str, info: Option<&StreamInfo>) -> StreamState {
        let mut state = StreamState::from_info(info);
        if let Some(viewers) = self.watching.get(stream) {
            state.watching = *viewers;
        }
        state
    }

    /// The cluster counts `viewers` of `stream`: its room announces them. Returns whether
    /// the room is open (to drain).
    pub(super) fn set_watching(&mut self, stream: &str, viewers: usize, now: Instant) -> bool {
        self.watching.insert(stream.to_owned(), viewers);
        let state = self.state(stream, find(&self.snapshot, stream));
        match self.open.get_mut(stream) {
            Some(open) => {
                open.room.set_stream(state, now);
                true
            }
            None => false,
        }
    }

    /// The streams whose rooms are open.
    pub(super) fn names(&self) -> Vec<String> {
        self.open.keys().cloned().collect()
    }

    /// The open rooms whose stream has been gone for the linger.
    pub(super) fn gone(&self, now: Instant) -> Vec<String> {
        self.open
            .iter()
            .filter(|(_, open)| open.stream_gone(now))
            .map(|(stream, _)| stream.clone())
            .collect()
    }

    /// Let go of every room that may be, closing its log file. Returns their streams.
    pub(super) fn release_idle(&mut self, now: Instant) -> Vec<String> {
        let idle: Vec<String> = self
            .open
            .iter()
            .filter(|(_, open)| open.releasable(now))
            .map(|(stream, _)| stream.clone())
            .collect();
        for stream in &idle {
            self.open.remove(stream);
            self.watching.remove(stream);
            tracing::debug!(%stream, "chat room closed: the stream ended and the chat is idle");
        }
        idle
    }

    /// How many rooms are open.
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }

    /// The earliest timer any open room wants.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.open
            .values()
            .filter_map(|o| o.room.poll_timeout())
            .min()
    }

    /// The rooms with a timer due at `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<String> {
        self.open
            .iter()
            .filter(|(_, o)| o.room.poll_timeout().is_some_and(|t| t <= now))
            .map(|(stream, _)| stream.clone())
            .collect()
    }
}

/// `stream` in the snapshot (sorted by name), if the engine has it.
fn find<'a>(snapshot: &'a [StreamInfo], stream: &str) -> Option<&'a StreamInfo> {
    snapshot
        .binary_search_by(|s| s.name.as_str().cmp(stream))
        .ok()
        .map(|i| &snapshot[i])
}

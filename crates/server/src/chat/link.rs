//! The chat thread's side of a cluster: what a stream's chat is on this node ([`Mode`]), the
//! messages that cross nodes, and the hub's handling of them.
//!
//! The stream's origin (the node holding its directory entry, i.e. its publisher) is the
//! chat's authority: it runs the one room that checks (flood limits, mutes, bans, slow mode,
//! length), logs, and publishes what it decided on `Topic::Chat(stream)` as [`RemoteEvent`]s,
//! one per batch of outputs, in one order. Every other node with members of the stream is an
//! edge: it forwards its members' joins, messages and leaves on `Topic::ChatInput(stream)`
//! as [`RemoteInput`]s (with the member's id, name, role and address — trusted because the
//! bus verifies every frame against the shared secret) and delivers the authority's events
//! to its members. Each edge also appends the authority's log records to its own log and
//! room state (a mirror), so it refuses banned viewers itself and, should it become the
//! origin, goes on from the same history.
//!
//! History on join comes from the authority: an edge's `join` is answered by the authority's
//! room with its `chat.history`, sent back to that one member. This reuses the room's own
//! join (same history, presence and status as a local member gets) instead of a second
//! request/reply protocol, and the authority's room then counts remote members in
//! `presence` like local ones.
//!
//! An edge expects every input to be acknowledged ([`RemoteEvent::ack`]) within
//! [`ACK_TIMEOUT`]; otherwise the member gets a `chat.error` with code `unavailable`, so a
//! message is never lost silently (the authority's node may have died). The wire types are in
//! [`super::wire`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use directo_chat::LogRecord;
use directo_cluster::Topic;
use signaling_proto::{ChatErrorCode, ChatServerMessage};
use tokio::sync::mpsc;

use super::hub::{Hub, Member, Sink};
use super::wire::{
    ACK_TIMEOUT, Ack, Delivery, Identity, Input, LinkCommand, Mode, RemoteEvent, RemoteInput,
};

/// An input of a local member waiting for the authority's acknowledgement.
struct Pending {
    stream: String,
    seq: u64,
    user: String,
    deadline: Instant,
}

/// The hub's state in a cluster.
pub(super) struct Link {
    node: String,
    out: mpsc::Sender<(Topic, Vec<u8>)>,
    modes: HashMap<String, Mode>,
    pending: Vec<Pending>,
    next_seq: u64,
    /// Per stream, the sequence number of the last event published as its authority.
    published: HashMap<String, u64>,
    /// Per stream, the authority and sequence number of the last event received.
    received: HashMap<String, (String, u64)>,
    /// The event being assembled while a room's outputs are drained.
    pub(super) outbox: RemoteEvent,
}

impl Link {
    pub(super) fn mode(&self, stream: &str) -> Mode {
        self.modes.get(stream).cloned().unwrap_or_default()
    }

    pub(super) fn is_authority(&self, stream: &str) -> bool {
        self.mode(stream) == Mode::Authority
    }

    /// Publishes `payload` on `topic`, in order; a full outbox is counted and logged.
    fn publish(&self, topic: Topic, payload: Vec<u8>) {
        if self.out.try_send((topic, payload)).is_err() {
            metrics::counter!("directo_chat_cluster_dropped_total").increment(1);
            tracing::warn!(
                "chat: the cluster outbox is full; a message for other nodes was dropped"
            );
        }
    }

    /// Publishes the event assembled in the outbox as `stream`'s authority, if it holds
    /// anything (or `force`).
    pub(super) fn flush(&mut self, stream: &str, force: bool) {
        let mut event = std::mem::take(&mut self.outbox);
        let empty = event.records.is_empty()
            && event.deliver.is_empty()
            && event.ack.is_none()
            && !event.hello;
        if empty && !force {
            return;
        }
        let seq = self.published.entry(stream.to_owned()).or_insert(0);
        *seq += 1;
        event.seq = *seq;
        if let Ok(payload) = serde_json::to_vec(&event) {
            self.publish(Topic::Chat(stream.to_owned()), payload);
        }
    }

    /// Sends `input` to `stream`'s authority `to`; returns its sequence number.
    fn forward(&mut self, stream: &str, to: &str, input: Input) -> u64 {
        self.next_seq += 1;
        let message = RemoteInput {
            to: to.to_owned(),
            seq: self.next_seq,
            input,
        };
        if let Ok(payload) = serde_json::to_vec(&message) {
            self.publish(Topic::ChatInput(stream.to_owned()), payload);
        }
        self.next_seq
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }
}

fn error_text(code: ChatErrorCode, message: &str) -> Option<Arc<str>> {
    serde_json::to_string(&ChatServerMessage::error(code, message.to_owned()))
        .ok()
        .map(Arc::from)
}

impl Hub {
    pub(super) fn on_link(&mut self, command: LinkCommand, now: Instant) {
        match command {
            LinkCommand::Attach { node, out } => {
                self.link = Some(Link {
                    node,
                    out,
                    modes: HashMap::new(),
                    pending: Vec::new(),
                    next_seq: 0,
                    published: HashMap::new(),
                    received: HashMap::new(),
                    outbox: RemoteEvent::default(),
                });
            }
            LinkCommand::Rooms { reply } => {
                let _ = reply.send(self.rooms.names());
            }
            LinkCommand::Mode { stream, mode } => self.set_mode(&stream, mode, now),
            LinkCommand::Input {
                stream,
                from,
                input,
            } => self.on_remote_input(&stream, &from, input, now),
            LinkCommand::Event {
                stream,
                from,
                event,
            } => self.on_remote_event(&stream, &from, event, now),
            LinkCommand::Alive { nodes } => self.keep_alive(&nodes, now),
            LinkCommand::Watching { stream, viewers } => {
                if self.rooms.set_watching(&stream, viewers, now) {
                    self.drain(&stream);
                }
            }
        }
    }

    /// The mode of `stream`'s chat here (`Local` without a cluster).
    pub(super) fn mode(&self, stream: &str) -> Mode {
        self.link
            .as_ref()
            .map_or(Mode::Local, |link| link.mode(stream))
    }

    /// A local member joined: an edge tells the authority (which answers with the history).
    pub(super) fn forward_join(&mut self, stream: &str, user: &str) {
        let Mode::Edge(authority) = self.mode(stream) else {
            return;
        };
        let Some(who) = self.identity(user) else {
            return;
        };
        if let Some(link) = self.link.as_mut() {
            link.forward(stream, &authority, Input::Join(who));
        }
    }

    /// A local member left: an edge tells the authority.
    pub(super) fn forward_leave(&mut self, stream: &str, user: &str) {
        if let (Mode::Edge(authority), Some(link)) = (self.mode(stream), self.link.as_mut()) {
            link.forward(
                stream,
                &authority,
                Input::Leave {
                    user: user.to_owned(),
                },
            );
        }
    }

    /// A local member wrote `text`. Returns `false` when the room here decides (no cluster,
    /// or this node is the authority); otherwise the input was forwarded or refused.
    pub(super) fn forward_message(
        &mut self,
        stream: &str,
        user: &str,
        text: &str,
        now: Instant,
    ) -> bool {
        match self.mode(stream) {
            Mode::Local | Mode::Authority => false,
            Mode::Orphaned => {
                self.refuse(
                    user,
                    "the chat is paused: the node of this stream's publisher is gone; it resumes when the stream is published again",
                );
                true
            }
            Mode::Edge(authority) => {
                if text.len() > directo_chat::MAX_RAW_BYTES {
                    if let Some(error) =
                        error_text(ChatErrorCode::TooLarge, "a chat message is at most 4 KiB")
                    {
                        self.deliver(user, &error);
                    }
                    return true;
                }
                let Some(who) = self.identity(user) else {
                    return true;
                };
                if let Some(link) = self.link.as_mut() {
                    let input = Input::Message {
                        who,
                        text: text.to_owned(),
                    };
                    let seq = link.forward(stream, &authority, input);
                    link.pending.push(Pending {
                        stream: stream.to_owned(),
                        seq,
                        user: user.to_owned(),
                        deadline: now + ACK_TIMEOUT,
                    });
                }
                true
            }
        }
    }

    /// The admin API moderates `stream`: `false` when the room here decides.
    pub(super) fn forward_admin(&mut self, stream: &str, text: &str) -> bool {
        match (self.mode(stream), self.link.as_mut()) {
            (Mode::Edge(authority), Some(link)) => {
                link.forward(
                    stream,
                    &authority,
                    Input::Admin {
                        text: text.to_owned(),
                    },
                );
                true
            }
            (Mode::Orphaned, _) => {
                tracing::warn!(%stream, "admin chat action dropped: the stream's chat authority is gone");
                true
            }
            _ => false,
        }
    }

    fn identity(&self, user: &str) -> Option<Identity> {
        let member = self.members.get(user)?;
        Some(Identity {
            user: user.to_owned(),
            name: member.name.clone(),
            role: member.role,
            origin: member.origin.clone(),
        })
    }

    /// Sends a local member an `unavailable` error.
    fn refuse(&mut self, user: &str, message: &str) {
        if let Some(text) = error_text(ChatErrorCode::Unavailable, message) {
            self.deliver(user, &text);
        }
    }

    fn set_mode(&mut self, stream: &str, mode: Mode, now: Instant) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let old = if mode == Mode::Local {
            link.modes.remove(stream)
        } else {
            link.modes.insert(stream.to_owned(), mode.clone())
        }
        .unwrap_or_default();
        if old == mode {
            return;
        }
        tracing::info!(%stream, from = ?old, to = ?mode, "chat authority changed");
        link.received.remove(stream);
        let unanswered: Vec<String> = link
            .pending
            .iter()
            .filter(|p| p.stream == stream)
            .map(|p| p.user.clone())
            .collect();
        link.pending.retain(|p| p.stream != stream);
        for user in unanswered {
            self.refuse(
                &user,
                "the chat moved to another node before your message was confirmed; it may not have been delivered",
            );
        }
        // Members of other nodes were this room's only while it was the authority: their
        // nodes join them at the new one.
        if mode != Mode::Authority {
            let remote: Vec<String> = self
                .members
                .iter()
                .filter(|(_, m)| m.stream == stream && matches!(m.sink, Sink::Remote(_)))
                .map(|(user, _)| user.clone())
                .collect();
            for user in remote {
                self.members.remove(&user);
                if let Some(open) = self.rooms.peek_mut(stream) {
                    open.room.leave(&user, now);
                }
            }
        }
        match mode {
            Mode::Edge(_) => self.rejoin(stream),
            Mode::Authority => {
                if let Some(link) = self.link.as_mut() {
                    link.outbox.hello = true;
                    link.flush(stream, true);
                }
            }
            Mode::Local | Mode::Orphaned => {}
        }
        self.drain(stream);
    }

    /// Joins every local member of `stream` at its authority (again).
    fn rejoin(&mut self, stream: &str) {
        let mut local: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.stream == stream && !matches!(m.sink, Sink::Remote(_)))
            .map(|(user, _)| user.clone())
            .collect();
        local.sort();
        for user in local {
            self.forward_join(stream, &user);
        }
    }

    fn on_remote_input(&mut self, stream: &str, from: &str, input: RemoteInput, now: Instant) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if input.to != link.node {
            return;
        }
        link.outbox = RemoteEvent {
            ack: Some(Ack {
                node: from.to_owned(),
                seq: input.seq,
            }),
            ..RemoteEvent::default()
        };
        if !link.is_authority(stream) {
            if let Input::Message { who, .. } = &input.input {
                self.remote_error(
                    from,
                    &who.user,
                    ChatErrorCode::Unavailable,
                    "this node is not the stream's chat authority any more; send again",
                );
            }
            if let Some(link) = self.link.as_mut() {
                link.flush(stream, true);
            }
            return;
        }
        match input.input {
            Input::Join(who) => {
                self.remote_join(stream, from, who, now);
            }
            Input::Message { who, text } => {
                let known = self.members.get(&who.user).is_some_and(|m| {
                    m.stream == stream && matches!(&m.sink, Sink::Remote(node) if node == from)
                });
                let user = who.user.clone();
                if (known || self.remote_join(stream, from, who, now))
                    && let Some(open) = self.rooms.get_mut(stream, now)
                {
                    open.room.handle_raw(&user, text.as_bytes(), now);
                }
            }
            Input::Leave { user } => {
                let theirs = self
                    .members
                    .get(&user)
                    .is_some_and(|m| matches!(&m.sink, Sink::Remote(node) if node == from));
                if theirs {
                    self.members.remove(&user);
                    if let Some(open) = self.rooms.get_mut(stream, now) {
                        open.room.leave(&user, now);
                    }
                }
            }
            Input::Admin { text } => {
                if let Some(open) = self.rooms.open(stream, now) {
                    open.room.handle_raw_as_moderator(
                        super::hub::ADMIN_USER,
                        "Admin",
                        text.as_bytes(),
                        now,
                    );
                }
            }
        }
        self.drain(stream);
        // Drained as the authority, the outbox went out; anything left (a refusal) goes now.
        if let Some(link) = self.link.as_mut()
            && link.outbox.ack.is_some()
        {
            link.flush(stream, true);
        }
    }

    /// Joins a member of node `from` to the authority's room; `false` (and the member told
    /// why) if it may not join.
    fn remote_join(&mut self, stream: &str, from: &str, who: Identity, now: Instant) -> bool {
        let Some(open) = self.rooms.open(stream, now) else {
            self.remote_error(
                from,
                &who.user,
                ChatErrorCode::Internal,
                "the chat log cannot be opened",
            );
            return false;
        };
        match open
            .room
            .join(&who.user, &who.name, who.role, who.origin.as_deref(), now)
        {
            Ok(_) => {
                self.members.insert(
                    who.user.clone(),
                    Member {
                        stream: stream.to_owned(),
                        sink: Sink::Remote(from.to_owned()),
                        name: who.name,
                        role: who.role,
                        origin: who.origin,
                    },
                );
                true
            }
            Err(error) => {
                let code = error.code();
                self.remote_error(from, &who.user, code, "you cannot join this chat");
                if code == ChatErrorCode::Banned
                    && let Some(link) = self.link.as_mut()
                {
                    link.outbox.deliver.push(Delivery::Disconnect {
                        node: from.to_owned(),
                        user: who.user,
                    });
                }
                false
            }
        }
    }

    fn remote_error(&mut self, node: &str, user: &str, code: ChatErrorCode, message: &str) {
        if let (Some(text), Some(link)) = (error_text(code, message), self.link.as_mut()) {
            link.outbox.deliver.push(Delivery::One {
                node: node.to_owned(),
                user: user.to_owned(),
                text: text.to_string(),
            });
        }
    }

    fn on_remote_event(&mut self, stream: &str, from: &str, event: RemoteEvent, now: Instant) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.mode(stream) != Mode::Edge(from.to_owned()) {
            return;
        }
        let me = link.node.clone();
        let gap = match link.received.get(stream) {
            Some((authority, seq)) => authority == from && event.seq != seq + 1,
            None => false,
        };
        link.received
            .insert(stream.to_owned(), (from.to_owned(), event.seq));
        if let Some(ack) = &event.ack
            && ack.node == me
        {
            link.pending.retain(|p| p.seq != ack.seq);
        }
        let banned = event
            .records
            .iter()
            .any(|r| matches!(r, LogRecord::Banned { .. }));
        if !event.records.is_empty()
            && let Some(open) = self.rooms.open(stream, now)
        {
            for record in &event.records {
                if let Err(error) = open.log.append(record) {
                    tracing::error!(%stream, %error, "chat: cannot mirror the authority's log record");
                }
                open.room.apply_record(record);
            }
        }
        for delivery in event.deliver {
            match delivery {
                Delivery::All { text } => {
                    let text: Arc<str> = Arc::from(text);
                    let users: Vec<String> = self
                        .members
                        .iter()
                        .filter(|(_, m)| m.stream == stream)
                        .map(|(user, _)| user.clone())
                        .collect();
                    for user in users {
                        self.deliver(&user, &text);
                    }
                }
                Delivery::One { node, user, text } if node == me => {
                    self.deliver(&user, &Arc::from(text));
                }
                Delivery::Disconnect { node, user } if node == me => {
                    self.disconnect(stream, &user, now);
                }
                _ => {}
            }
        }
        if banned {
            // Every local session the ban matches goes, not only the one it named.
            let matching: Vec<String> = match self.rooms.peek_mut(stream) {
                Some(open) => self
                    .members
                    .iter()
                    .filter(|(user, m)| {
                        m.stream == stream
                            && open.room.member(user).is_some_and(|member| {
                                open.room.is_banned(user, &member.name, m.origin.as_deref())
                            })
                    })
                    .map(|(user, _)| user.clone())
                    .collect(),
                None => Vec::new(),
            };
            for user in matching {
                self.disconnect(stream, &user, now);
            }
        }
        if gap || event.hello {
            if gap {
                tracing::warn!(%stream, authority = %from, "chat: an event from the authority was lost; joining the members again for a fresh history");
            }
            self.rejoin(stream);
        }
        self.drain(stream);
    }

    /// Closes a local member's chat and media.
    fn disconnect(&mut self, stream: &str, user: &str, now: Instant) {
        if let Some(member) = self.members.remove(user) {
            if let Some(open) = self.rooms.peek_mut(stream) {
                open.room.leave(user, now);
            }
            self.close_sink(user, member.sink);
        }
    }

    /// Remote members of nodes no longer alive leave the authority's rooms.
    fn keep_alive(&mut self, nodes: &BTreeSet<String>, now: Instant) {
        let gone: Vec<(String, String)> = self
            .members
            .iter()
            .filter_map(|(user, m)| match &m.sink {
                Sink::Remote(node) if !nodes.contains(node) => {
                    Some((user.clone(), m.stream.clone()))
                }
                _ => None,
            })
            .collect();
        let mut streams = BTreeSet::new();
        for (user, stream) in gone {
            self.members.remove(&user);
            if let Some(open) = self.rooms.peek_mut(&stream) {
                open.room.leave(&user, now);
            }
            streams.insert(stream);
        }
        for stream in streams {
            self.drain(&stream);
        }
    }

    /// Inputs the authority did not acknowledge in time: their members hear so.
    pub(super) fn expire_pending(&mut self, now: Instant) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let (late, waiting): (Vec<Pending>, Vec<Pending>) =
            link.pending.drain(..).partition(|p| p.deadline <= now);
        link.pending = waiting;
        for pending in late {
            tracing::warn!(stream = %pending.stream, "chat: the stream's authority did not confirm a message in time");
            self.refuse(
                &pending.user,
                "the stream's chat authority did not confirm your message in time; it may not have been delivered",
            );
        }
    }
}

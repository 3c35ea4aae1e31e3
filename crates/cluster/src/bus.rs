//! The pub/sub task: owns the subscriber connection, verifies every incoming frame once, and
//! hands verified messages to the local subscribers.
//!
//! One task owns the connection and the table of subscribers; [`crate::Cluster::subscribe`]
//! talks to it over a channel. It pings Redis every heartbeat (a connection that died
//! silently would otherwise look like a quiet one), reconnects and re-subscribes every
//! channel after a drop, and unsubscribes a channel once its last [`Subscription`] is gone.
//! Messages published while the connection is down are lost: Redis pub/sub is fire and
//! forget, and the callers' protocols (chat, kicks, drains) tolerate a lost message.
//! A slow subscriber never stalls the others: its queue is bounded and overflow is dropped
//! and counted.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use crate::backend::Backend;
use crate::error::{ClusterError, Result};
use crate::message::{ClusterMessage, Rejection, Sealer};
use crate::replay::ReplayGuard;
use crate::stats::Counters;
use crate::topic::Topic;

/// How many messages a subscriber may fall behind before its messages are dropped.
const SUBSCRIBER_QUEUE: usize = 1024;

/// Messages on one topic, verified; dropped when no longer wanted.
#[derive(Debug)]
pub struct Subscription {
    topic: Topic,
    receiver: mpsc::Receiver<ClusterMessage>,
}

impl Subscription {
    /// The topic subscribed to.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The next message; `None` once the cluster handle was shut down or dropped.
    pub async fn recv(&mut self) -> Option<ClusterMessage> {
        self.receiver.recv().await
    }
}

impl Stream for Subscription {
    type Item = ClusterMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

/// What the handles ask of the bus task.
pub(crate) enum BusCommand {
    /// Deliver `topic`'s messages (published on `channel`) to a new subscription.
    Subscribe {
        channel: String,
        topic: Topic,
        reply: oneshot::Sender<Result<Subscription>>,
    },
    /// Close the connection and end the task.
    Stop,
}

/// One subscribed channel and its local subscribers.
struct Channel {
    topic: Topic,
    subscribers: Vec<mpsc::Sender<ClusterMessage>>,
}

/// A live subscriber connection.
struct Connection {
    sink: PubSubSink,
    stream: PubSubStream,
}

/// The pub/sub task's state.
pub(crate) struct Bus {
    backend: Backend,
    sealer: Sealer,
    counters: Arc<Counters>,
    commands: mpsc::UnboundedReceiver<BusCommand>,
    heartbeat: Duration,
    max_age_ms: u64,
    channels: HashMap<String, Channel>,
    connection: Option<Connection>,
    replay: ReplayGuard,
}

impl Bus {
    /// The task's state; nothing connects until the first subscription.
    pub(crate) fn new(
        backend: Backend,
        sealer: Sealer,
        counters: Arc<Counters>,
        commands: mpsc::UnboundedReceiver<BusCommand>,
        heartbeat: Duration,
        max_age: Duration,
    ) -> Self {
        Self {
            backend,
            sealer,
            counters,
            commands,
            heartbeat,
            max_age_ms: u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX),
            channels: HashMap::new(),
            connection: None,
            replay: ReplayGuard::new(max_age),
        }
    }

    /// Runs until told to stop or every handle is gone.
    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(BusCommand::Subscribe { channel, topic, reply }) => {
                        let subscribed = self.subscribe(channel, topic).await;
                        // The caller may have given up waiting; its subscription then
                        // closes and is pruned at the next tick.
                        let _ = reply.send(subscribed);
                    }
                    Some(BusCommand::Stop) | None => return,
                },
                message = next_message(&mut self.connection) => match message {
                    Some(message) => self.deliver(&message),
                    None => {
                        tracing::warn!("cluster pub/sub connection lost; reconnecting");
                        self.connection = None;
                    }
                },
                _ = tick.tick() => self.maintain().await,
            }
        }
    }

    /// Adds a subscriber to `channel`, subscribing in Redis first if it is new.
    async fn subscribe(&mut self, channel: String, topic: Topic) -> Result<Subscription> {
        if self.connection.is_none() {
            self.connect().await?;
        }
        if !self.channels.contains_key(&channel) {
            let first = self.redis_subscribe(std::slice::from_ref(&channel)).await;
            match first {
                Ok(()) => {}
                // A Redis that does not answer will not answer a second connection either.
                Err(error) if error == self.backend.timed_out() => return Err(error),
                Err(_) => {
                    // The connection died unnoticed since the last ping: one fresh try.
                    self.connect().await?;
                    self.redis_subscribe(std::slice::from_ref(&channel)).await?;
                }
            }
            self.channels.insert(
                channel.clone(),
                Channel {
                    topic: topic.clone(),
                    subscribers: Vec::new(),
                },
            );
        }
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_QUEUE);
        if let Some(entry) = self.channels.get_mut(&channel) {
            entry.subscribers.push(sender);
        }
        Ok(Subscription { topic, receiver })
    }

    /// Opens the connection and subscribes every channel that has subscribers.
    async fn connect(&mut self) -> Result<()> {
        let (sink, stream) = self.backend.pubsub().await?.split();
        self.connection = Some(Connection { sink, stream });
        let channels: Vec<String> = self.channels.keys().cloned().collect();
        if !channels.is_empty() {
            self.redis_subscribe(&channels).await?;
        }
        Counters::bump(&self.counters.pubsub_connects);
        Ok(())
    }

    /// `SUBSCRIBE channels`, bounded; a failure drops the connection for a fresh start.
    async fn redis_subscribe(&mut self, channels: &[String]) -> Result<()> {
        let Some(connection) = self.connection.as_mut() else {
            return Err(ClusterError::Unavailable {
                reason: "no pub/sub connection".to_owned(),
            });
        };
        let subscribed =
            tokio::time::timeout(self.backend.timeout(), connection.sink.subscribe(channels)).await;
        match subscribed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                self.connection = None;
                Err(self.backend.error(&error))
            }
            Err(_) => {
                self.connection = None;
                Err(self.backend.timed_out())
            }
        }
    }

    /// Every heartbeat: forget closed subscriptions, check the connection, reconnect.
    async fn maintain(&mut self) {
        let mut abandoned = Vec::new();
        for (name, channel) in &mut self.channels {
            channel.subscribers.retain(|sender| !sender.is_closed());
            if channel.subscribers.is_empty() {
                abandoned.push(name.clone());
            }
        }
        for name in &abandoned {
            self.channels.remove(name);
        }
        match self.connection.as_mut() {
            Some(connection) => {
                let timeout = self.backend.timeout();
                if !abandoned.is_empty() {
                    // Best effort: a failure here is caught by the ping below.
                    let _ = tokio::time::timeout(timeout, connection.sink.unsubscribe(&abandoned))
                        .await;
                }
                // A subscribed connection answers PING with ["pong", ""], not PONG: any
                // answer will do.
                let ping =
                    tokio::time::timeout(timeout, connection.sink.ping::<redis::Value>()).await;
                if !matches!(ping, Ok(Ok(_))) {
                    tracing::warn!("cluster pub/sub connection does not answer; reconnecting");
                    self.connection = None;
                }
            }
            None if !self.channels.is_empty() => {
                if let Err(error) = self.connect().await {
                    tracing::debug!(%error, "cluster pub/sub reconnect failed; retrying");
                } else {
                    tracing::info!("cluster pub/sub reconnected");
                }
            }
            None => {}
        }
    }

    /// Verifies one incoming frame and hands it to the channel's subscribers.
    fn deliver(&mut self, message: &redis::Msg) {
        let name = message.get_channel_name();
        let Some(channel) = self.channels.get_mut(name) else {
            // A message that crossed our UNSUBSCRIBE.
            return;
        };
        let opened =
            match self
                .sealer
                .open(name, message.get_payload_bytes(), now_ms(), self.max_age_ms)
            {
                Ok(opened) => opened,
                Err(Rejection::Forged) => {
                    Counters::bump(&self.counters.messages_forged);
                    tracing::warn!(
                        channel = name,
                        "dropped a cluster message that does not verify"
                    );
                    return;
                }
                Err(Rejection::Stale) => {
                    Counters::bump(&self.counters.messages_stale);
                    tracing::warn!(channel = name, "dropped a stale cluster message");
                    return;
                }
            };
        if !self.replay.first_time(opened.tag, Instant::now()) {
            Counters::bump(&self.counters.messages_replayed);
            return;
        }
        let delivered = ClusterMessage {
            topic: channel.topic.clone(),
            from: opened.from,
            sent_at_ms: opened.sent_at_ms,
            payload: opened.payload,
        };
        for subscriber in &channel.subscribers {
            if let Err(mpsc::error::TrySendError::Full(_)) = subscriber.try_send(delivered.clone())
            {
                Counters::bump(&self.counters.messages_dropped_full);
            }
        }
    }
}

/// The next message of the connection, or `None` when it ended; never resolves without one.
async fn next_message(connection: &mut Option<Connection>) -> Option<redis::Msg> {
    match connection {
        Some(connection) => connection.stream.next().await,
        None => std::future::pending().await,
    }
}

/// Unix milliseconds now, on this node's clock (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

//! The streams as the rest of the server reads them: a snapshot the engine publishes (a
//! `watch` of every stream's [`StreamInfo`], sorted by name) when something changes — at once
//! when a command changed it (its caller reads its own change), otherwise at most every
//! [`MIN_INTERVAL`] — and every [`REFRESH_INTERVAL`] while a stream is live (its bitrate
//! moves). Pages, the API and signaling read it without sending the media thread a
//! command, so a crowd polling stream status costs the media path nothing.

use signaling_proto::StreamInfo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use super::streams::Streams;

/// Changes closer together than this are published together.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How often a live stream's figures (bitrate) are refreshed.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The published snapshot and when to publish it next.
pub(crate) struct Board {
    tx: watch::Sender<Arc<Vec<StreamInfo>>>,
    changed: bool,
    last: Option<Instant>,
}

impl Board {
    /// A board with nothing on it, and the receiver the engine's handle reads.
    pub(crate) fn new() -> (Self, watch::Receiver<Arc<Vec<StreamInfo>>>) {
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        (
            Board {
                tx,
                changed: false,
                last: None,
            },
            rx,
        )
    }

    /// Something readers see changed (a stream, its publisher, its viewer count, recording).
    pub(crate) fn changed(&mut self) {
        self.changed = true;
    }

    /// When the board next wants to publish.
    pub(crate) fn next_timeout(&self, any_live: bool) -> Option<Instant> {
        let Some(last) = self.last else {
            return self.changed.then_some(Instant::now());
        };
        if self.changed {
            Some(last + MIN_INTERVAL)
        } else if any_live {
            Some(last + REFRESH_INTERVAL)
        } else {
            None
        }
    }

    /// Publish what changed now, whatever the interval: a client that just created or ended
    /// a session reads its own change.
    pub(crate) fn publish_changes(&mut self, streams: &Streams, now: Instant) {
        if self.changed {
            self.changed = false;
            self.last = Some(now);
            self.tx.send_replace(Arc::new(streams.infos(now)));
        }
    }

    /// Publish a new snapshot if one is due at `now`.
    pub(crate) fn publish_if_due(&mut self, streams: &Streams, now: Instant) {
        let any_live = streams.iter().any(|(_, e)| e.live_announced);
        if self.next_timeout(any_live).is_none_or(|t| t > now) {
            return;
        }
        self.changed = false;
        self.last = Some(now);
        self.tx.send_replace(Arc::new(streams.infos(now)));
    }
}

//! Runs a [`Recorder`] on its own thread, fed by a bounded channel, so the forwarding path
//! never waits on the disk: [`RecorderHandle::push`] uses `try_send`, and a full channel
//! costs the packet (counted in [`RecorderHandle::dropped`]), never time. After a drop the
//! recorder is told packets were lost: audio continues with a gap, video waits for a
//! keyframe and asks for one through the event callback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use directo_sfu::MediaKind;
use rtc::rtp::Packet;

use crate::error::{RecorderError, Result};
use crate::info::RecordingInfo;
use crate::recorder::{Recorder, RecorderOutput, RecordingTracks};

/// A sensible channel size: about two seconds of a 2 Mbit/s stream's packets.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 1024;

/// What the recorder thread tells the media engine.
#[derive(Debug)]
pub enum RecorderEvent {
    /// Ask the publisher for a keyframe.
    KeyframeNeeded,
    /// Recording stopped on an error (e.g. disk full); the file is left as a crash would
    /// leave it, readable up to its last cluster and repairable with [`crate::recover`].
    Failed(RecorderError),
}

enum Command {
    Packet(MediaKind, Packet, Instant),
    SenderReport {
        kind: MediaKind,
        ssrc: u32,
        ntp: u64,
        rtp: u32,
        arrival: Instant,
    },
    PublisherChanged(RecordingTracks, Instant),
    Lost(Instant),
}

/// The media engine's side of a recorder running on its own thread.
pub struct RecorderHandle {
    tx: Option<SyncSender<Command>>,
    dropped: Arc<AtomicU64>,
    overflowed: AtomicBool,
    thread: Option<JoinHandle<Result<Vec<RecordingInfo>>>>,
    path: PathBuf,
}

impl RecorderHandle {
    /// Moves `recorder` to a new thread with a channel of `capacity` commands. `on_event`
    /// runs on that thread.
    pub fn spawn(
        recorder: Recorder,
        capacity: usize,
        on_event: impl FnMut(RecorderEvent) + Send + 'static,
    ) -> Result<RecorderHandle> {
        let path = recorder.path().to_path_buf();
        let (tx, rx) = sync_channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(recorder, rx, on_event))
            .map_err(|source| RecorderError::io("cannot start a thread for", &path, source))?;
        Ok(RecorderHandle {
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
            overflowed: AtomicBool::new(false),
            thread: Some(thread),
            path,
        })
    }

    /// The file being written when the recorder started.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands over one RTP packet of the publisher's `kind` track; never blocks.
    pub fn push(&self, kind: MediaKind, packet: Packet, arrival: Instant) {
        self.send(Command::Packet(kind, packet, arrival), arrival);
    }

    /// Hands over a sender report of the publisher's `kind` track; never blocks.
    pub fn sender_report(&self, kind: MediaKind, ssrc: u32, ntp: u64, rtp: u32, arrival: Instant) {
        self.send(
            Command::SenderReport {
                kind,
                ssrc,
                ntp,
                rtp,
                arrival,
            },
            arrival,
        );
    }

    /// Tells the recorder that a new publisher took over the stream; never blocks.
    pub fn publisher_changed(&self, tracks: RecordingTracks, now: Instant) {
        self.send(Command::PublisherChanged(tracks, now), now);
    }

    /// Commands dropped because the channel was full (or the recorder had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The drop counter itself, to export as a metric.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    fn send(&self, command: Command, now: Instant) {
        let Some(tx) = &self.tx else { return };
        if self.overflowed.load(Ordering::Relaxed) {
            // The loss notice goes first, so the recorder knows the packets after it follow
            // a hole.
            match tx.try_send(Command::Lost(now)) {
                Ok(()) => self.overflowed.store(false, Ordering::Relaxed),
                Err(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(command) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }

    /// Stops recording: waits for the thread to write what it holds and finish the file.
    /// Returns every file finished (more than one if the publisher changed codecs).
    pub fn finish(mut self) -> Result<Vec<RecordingInfo>> {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => Err(RecorderError::Stopped),
        }
    }
}

impl Drop for RecorderHandle {
    /// Closing the channel makes the thread finish the file on its own; nobody waits.
    fn drop(&mut self) {
        self.tx = None;
    }
}

fn run(
    mut recorder: Recorder,
    rx: Receiver<Command>,
    mut on_event: impl FnMut(RecorderEvent),
) -> Result<Vec<RecordingInfo>> {
    // The time the caller last gave: finishing happens on it rather than on this thread's
    // clock, so a caller with a clock of its own (a replay, a test) stays consistent.
    let mut latest: Option<Instant> = None;
    while let Ok(command) = rx.recv() {
        let at = match &command {
            Command::Packet(_, _, at)
            | Command::SenderReport { arrival: at, .. }
            | Command::PublisherChanged(_, at)
            | Command::Lost(at) => *at,
        };
        latest = Some(latest.map_or(at, |latest| latest.max(at)));
        let result = match command {
            Command::Packet(kind, packet, arrival) => recorder.push(kind, packet, arrival),
            Command::SenderReport {
                kind,
                ssrc,
                ntp,
                rtp,
                arrival,
            } => {
                recorder.sender_report(kind, ssrc, ntp, rtp, arrival);
                Ok(())
            }
            Command::PublisherChanged(tracks, now) => recorder.publisher_changed(tracks, now),
            Command::Lost(now) => {
                recorder.packets_lost(now);
                Ok(())
            }
        };
        while let Some(RecorderOutput::KeyframeNeeded) = recorder.poll_output() {
            on_event(RecorderEvent::KeyframeNeeded);
        }
        if let Err(error) = result {
            tracing::error!(%error, "recording stopped");
            on_event(RecorderEvent::Failed(error));
            return Err(RecorderError::Stopped);
        }
    }
    recorder.finish(latest.unwrap_or_else(Instant::now))
}

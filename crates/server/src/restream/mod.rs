//! Restreaming: a live stream pushed to RTMP(S) destinations (YouTube, Facebook, LinkedIn,
//! Twitch, any RTMP server) beside its WebRTC audience and its recording.
//!
//! ```text
//! engine (media thread) --try_send--> restream tap thread (live Matroska, A/V synced as
//!   the recording is) --bounded channel--> encoder task: ffmpeg (nice) stdin -> FLV stdout
//!   -> FLV tags -> broadcast --> one task per destination: ffmpeg -c copy (nice) -> RTMP(S)
//! ```
//!
//! [`Restreams`] owns the destinations (`store`, kept in the data dir) and answers the
//! engine's [`RestreamPort`]: a stream with destinations is wanted; when its tap starts, an
//! encoder run begins and every destination gets a task; when the tap ends (the stream
//! ended, or the publisher stayed away past the recording grace) the encoder's input ends,
//! the fan-out closes and the destinations wait for the next go-live. One-off destinations
//! are forgotten then. Every ffmpeg is killed when its task is dropped (`kill_on_drop`).
//!
//! In a cluster, restreams run where the publisher is (the stream's origin): only there does
//! the engine start a tap. Destinations are kept by the node they were added on.

mod api;
mod destination;
mod encoder;
mod flv;
mod secret;
mod store;

use bytes::Bytes;
use directo_media::{RecordingTracks, RestreamPort};
use signaling_proto::{ErrorCode, RestreamInfo, RestreamRequest, RestreamStatus};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::ApiError;
use destination::{Progress, SharedProgress};
use encoder::Fanout;
use store::{Destination, Store};

pub use api::routes;
pub use encoder::RestreamConfig;

/// Chunks of Matroska queued for the encoder before the tap's thread waits.
const INPUT_CAPACITY: usize = 256;
/// After an encoder failed, how long its stream is not restreamed (no restart loop).
const ENCODER_COOLDOWN: Duration = Duration::from_secs(5);
/// How long after a go-live ends its one-off destinations are forgotten (a tap that
/// restarts at once, for new codecs, keeps them).
const ONCE_LINGER: Duration = Duration::from_secs(15);

/// One encoder run: the fan-out its destinations read, and their tasks.
struct Run {
    generation: u64,
    fanout: Fanout,
    destinations: HashMap<String, AbortHandle>,
}

#[derive(Default)]
struct State {
    runs: HashMap<String, Run>,
    progress: HashMap<String, SharedProgress>,
    cooldown: HashMap<String, Instant>,
    generation: u64,
}

struct Inner {
    config: Arc<RestreamConfig>,
    store: Store,
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
}

/// The restream service: destinations, encoder runs, destination tasks.
#[derive(Clone)]
pub struct Restreams {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Restreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restreams").finish_non_exhaustive()
    }
}

/// The tap's writer: Matroska chunks to the encoder task (blocking the tap's own thread
/// when the encoder is behind, never the media thread).
struct PipeWriter {
    tx: mpsc::Sender<Bytes>,
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the encoder ended")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Restreams {
    /// The service, with destinations kept in `path` (`None`: in memory only). Tasks run
    /// on the current tokio runtime.
    pub fn new(config: RestreamConfig, path: Option<PathBuf>) -> Self {
        Restreams {
            inner: Arc::new(Inner {
                config: Arc::new(config),
                store: Store::load(path),
                runtime: tokio::runtime::Handle::current(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep going with it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a destination to `stream`; it starts now if the stream is being restreamed,
    /// else at the next go-live.
    pub(crate) fn add(
        &self,
        stream: &str,
        request: RestreamRequest,
    ) -> Result<RestreamInfo, ApiError> {
        let destination = store::check(request)?;
        self.inner.store.add(
            stream,
            destination.clone(),
            self.inner.config.max_per_stream,
        )?;
        tracing::info!(%stream, destination = %destination.name, id = %destination.id, url = %destination.url, once = destination.once, "restream destination added");
        let mut state = self.state();
        let progress: SharedProgress = Arc::default();
        state
            .progress
            .insert(destination.id.clone(), Arc::clone(&progress));
        if let Some(run) = state.runs.get_mut(stream) {
            let task =
                self.spawn_destination(stream, destination.clone(), &run.fanout, progress.clone());
            run.destinations.insert(destination.id.clone(), task);
        }
        drop(state);
        Ok(info(&destination, &progress))
    }

    /// Stops and forgets destination `id` of `stream`.
    pub(crate) fn remove(&self, stream: &str, id: &str) -> Result<(), ApiError> {
        let Some(removed) = self.inner.store.remove(stream, id)? else {
            return Err(ApiError::new(
                ErrorCode::RestreamNotFound,
                format!("stream {stream} has no restream destination {id}"),
            ));
        };
        let mut state = self.state();
        state.progress.remove(id);
        if let Some(task) = state
            .runs
            .get_mut(stream)
            .and_then(|run| run.destinations.remove(id))
        {
            task.abort();
        }
        tracing::info!(%stream, destination = %removed.name, %id, "restream destination removed");
        Ok(())
    }

    /// Every destination of `stream` with its status.
    pub(crate) fn list(&self, stream: &str) -> Vec<RestreamInfo> {
        let destinations = self.inner.store.list(stream);
        let state = self.state();
        destinations
            .iter()
            .map(|d| match state.progress.get(&d.id) {
                Some(progress) => info(d, progress),
                None => info(d, &SharedProgress::default()),
            })
            .collect()
    }

    /// Stops every encoder and destination (their ffmpeg processes are killed).
    pub fn shutdown(&self) {
        let mut state = self.state();
        for (_, run) in state.runs.drain() {
            for task in run.destinations.into_values() {
                task.abort();
            }
        }
    }

    fn spawn_destination(
        &self,
        stream: &str,
        destination: Destination,
        fanout: &Fanout,
        progress: SharedProgress,
    ) -> AbortHandle {
        let config = Arc::clone(&self.inner.config);
        let feed = fanout.feed();
        self.inner
            .runtime
            .spawn(destination::run(
                config,
                stream.to_owned(),
                destination,
                feed,
                progress,
            ))
            .abort_handle()
    }

    /// The encoder run `generation` of `stream` ended: its destinations see the fan-out
    /// close and wait for the next go-live.
    fn encoder_ended(&self, stream: &str, generation: u64, result: Result<(), String>) {
        let mut state = self.state();
        if state
            .runs
            .get(stream)
            .is_some_and(|run| run.generation == generation)
        {
            state.runs.remove(stream);
        }
        if let Err(error) = result {
            tracing::error!(%stream, %error, "restream encoder failed");
            state
                .cooldown
                .insert(stream.to_owned(), Instant::now() + ENCODER_COOLDOWN);
        }
        drop(state);
        let this = self.clone();
        let stream = stream.to_owned();
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(ONCE_LINGER).await;
            let mut state = this.state();
            if !state.runs.contains_key(&stream) {
                for id in this.inner.store.forget_once(&stream) {
                    state.progress.remove(&id);
                }
            }
        });
    }
}

impl RestreamPort for Restreams {
    fn wanted(&self, stream: &str) -> bool {
        if !self.inner.store.has_any(stream) {
            return false;
        }
        let mut state = self.state();
        match state.cooldown.get(stream) {
            Some(until) if *until > Instant::now() => false,
            Some(_) => {
                state.cooldown.remove(stream);
                true
            }
            None => true,
        }
    }

    fn open(&self, stream: &str, tracks: RecordingTracks) -> Option<Box<dyn Write + Send>> {
        let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
        let (fanout, prelude) = encoder::fanout(tracks.video.is_some());
        let mut state = self.state();
        state.generation += 1;
        let generation = state.generation;
        if let Some(old) = state.runs.remove(stream) {
            for task in old.destinations.into_values() {
                task.abort();
            }
        }
        let mut run = Run {
            generation,
            fanout: fanout.clone(),
            destinations: HashMap::new(),
        };
        for destination in self.inner.store.list(stream) {
            let progress: SharedProgress = Arc::new(Mutex::new(Progress::default()));
            state
                .progress
                .insert(destination.id.clone(), Arc::clone(&progress));
            let id = destination.id.clone();
            let task = self.spawn_destination(stream, destination, &fanout, progress);
            run.destinations.insert(id, task);
        }
        state.runs.insert(stream.to_owned(), run);
        drop(state);
        let this = self.clone();
        let name = stream.to_owned();
        let config = Arc::clone(&self.inner.config);
        let tags = fanout.tags.clone();
        self.inner.runtime.spawn(async move {
            let result = encoder::run(config, name.clone(), tracks, rx, tags, prelude).await;
            this.encoder_ended(&name, generation, result);
        });
        Some(Box::new(PipeWriter { tx }))
    }
}

/// A destination as the API shows it: the key masked, the figures of its status.
fn info(destination: &Destination, progress: &SharedProgress) -> RestreamInfo {
    let p = progress.lock().map(|p| p.clone()).unwrap_or_default();
    let live = p.status == RestreamStatus::Live;
    RestreamInfo {
        id: destination.id.clone(),
        name: destination.name.clone(),
        url: destination.url.clone(),
        key: secret::mask(&destination.key),
        once: destination.once,
        status: p.status,
        bitrate_bps: p.bitrate_bps.filter(|_| live),
        uptime_s: p.live_since.filter(|_| live).map(|t| t.elapsed().as_secs()),
        error: p.error,
        attempts: p.attempts,
    }
}

//! One destination of a live stream: an `ffmpeg -f flv -i pipe:0 -c copy -f flv <url/key>`
//! (at a lower priority) fed from the encoder's [`Fanout`], starting at a keyframe with the
//! prelude in front and timestamps from zero. A destination that drops or refuses is tried
//! again after 1 s, doubling to 30 s; after [`MAX_FAILURES`] failures in a row without a
//! minute of sending it is `failed` until the next go-live. Each destination is on its own:
//! a slow one skips to the next keyframe, a dead one affects nobody else. What ffmpeg says
//! is redacted before it is logged or shown.

use bytes::Bytes;
use signaling_proto::RestreamStatus;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::broadcast::error::RecvError;

use super::encoder::{Feed, NICENESS, RestreamConfig};
use super::flv::{Tag, TagKind};
use super::secret::Redactor;
use super::store::Destination;

/// The first pause before trying again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Failures in a row after which a destination is given up until the next go-live.
pub(crate) const MAX_FAILURES: u32 = 8;
/// Sending this long resets the backoff and the failure count.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// A write to ffmpeg that takes this long means the destination stopped taking data.
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a finishing ffmpeg may take to flush.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the API shows of a destination.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub status: RestreamStatus,
    pub live_since: Option<Instant>,
    pub bitrate_bps: Option<u64>,
    pub error: Option<String>,
    pub attempts: u32,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            status: RestreamStatus::Waiting,
            live_since: None,
            bitrate_bps: None,
            error: None,
            attempts: 0,
        }
    }
}

/// A destination's progress, shared with the API.
pub(crate) type SharedProgress = Arc<Mutex<Progress>>;

fn update(progress: &SharedProgress, change: impl FnOnce(&mut Progress)) {
    if let Ok(mut p) = progress.lock() {
        change(&mut p);
    }
}

/// Sends `fanout` to `destination` until the fan-out closes (the stream ended) or the
/// destination is given up.
pub(crate) async fn run(
    config: Arc<RestreamConfig>,
    stream: String,
    destination: Destination,
    mut feed: Feed,
    progress: SharedProgress,
) {
    let redactor = Redactor::new(&destination.key);
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0;
    loop {
        update(&progress, |p| {
            p.attempts += 1;
            p.status = RestreamStatus::Connecting;
            p.live_since = None;
            p.bitrate_bps = None;
        });
        let started = Instant::now();
        let outcome = attempt(&config, &destination, &mut feed, &progress, &redactor).await;
        let reason = match outcome {
            Ok(()) => {
                update(&progress, |p| {
                    p.status = RestreamStatus::Waiting;
                    p.live_since = None;
                    p.bitrate_bps = None;
                });
                return;
            }
            Err(reason) => reason,
        };
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
            failures = 0;
        }
        failures += 1;
        tracing::warn!(%stream, destination = %destination.name, id = %destination.id, error = %reason, failures, "restream destination failed");
        let give_up = failures >= MAX_FAILURES;
        update(&progress, |p| {
            p.status = if give_up {
                RestreamStatus::Failed
            } else {
                RestreamStatus::Retrying
            };
            p.error = Some(reason);
            p.live_since = None;
            p.bitrate_bps = None;
        });
        if give_up {
            return;
        }
        // Wait, keeping up with the fan-out so the next attempt starts from now.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                next = feed.tags.recv() => if let Err(RecvError::Closed) = next {
                    update(&progress, |p| p.status = RestreamStatus::Waiting);
                    return;
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The ffmpeg that publishes to the destination.
fn spawn(config: &RestreamConfig, destination: &Destination) -> std::io::Result<Child> {
    Command::new("nice")
        .arg("-n")
        .arg(NICENESS)
        .arg(&config.ffmpeg)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostats",
            "-progress",
            "pipe:1",
            "-analyzeduration",
            "1000000",
            "-f",
            "flv",
            "-i",
            "pipe:0",
            "-map",
            "0",
            "-c",
            "copy",
            "-rw_timeout",
            "15000000",
            "-f",
            "flv",
            "-flvflags",
            "no_duration_filesize",
        ])
        .arg(destination.target())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

/// One connection: `Ok` when the fan-out closed, `Err(why)` when the destination failed.
async fn attempt(
    config: &RestreamConfig,
    destination: &Destination,
    feed: &mut Feed,
    progress: &SharedProgress,
    redactor: &Redactor,
) -> Result<(), String> {
    // Start at a keyframe: skip to the next one (the prelude before it is complete then).
    let has_video = feed.has_video;
    let first = loop {
        match feed.tags.recv().await {
            Ok(tag) if starts_picture(&tag, has_video) => break tag,
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return Ok(()),
        }
    };
    let prelude = feed.prelude.borrow().bytes();
    let Some(prelude) = prelude else {
        return Err("the encoder wrote no FLV header".to_owned());
    };
    let mut child =
        spawn(config, destination).map_err(|e| format!("cannot start {}: {e}", config.ffmpeg))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("the ffmpeg pipes are missing".to_owned());
    };
    let last_error: Arc<Mutex<Option<String>>> = Arc::default();
    let errors = {
        let last_error = Arc::clone(&last_error);
        let redactor = redactor.clone();
        let name = destination.name.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = redactor.redact(line.trim());
                tracing::info!(destination = %name, "restream ffmpeg: {line}");
                if let Ok(mut last) = last_error.lock() {
                    *last = Some(line);
                }
            }
        })
    };
    let mut progress_lines = BufReader::new(stdout).lines();
    let base = first.timestamp();
    let mut waiting_for_keyframe = false;
    let mut window = (Instant::now(), 0u64);
    let failed = |what: String| {
        let said = last_error.lock().ok().and_then(|l| l.clone());
        said.unwrap_or(what)
    };
    let result: Result<(), String> = async {
        write(&mut stdin, &prelude).await?;
        write(&mut stdin, &first.with_timestamp(0)).await?;
        loop {
            tokio::select! {
                next = feed.tags.recv() => match next {
                    Ok(tag) => {
                        if waiting_for_keyframe {
                            if !starts_picture(&tag, has_video) {
                                continue;
                            }
                            waiting_for_keyframe = false;
                        }
                        let bytes: Bytes = tag.with_timestamp(tag.timestamp().saturating_sub(base));
                        write(&mut stdin, &bytes).await?;
                        window.1 += bytes.len() as u64;
                        let elapsed = window.0.elapsed();
                        if elapsed >= Duration::from_secs(2) {
                            let bps = (window.1 * 8) as f64 / elapsed.as_secs_f64();
                            update(progress, |p| p.bitrate_bps = Some(bps as u64));
                            window = (Instant::now(), 0);
                        }
                    }
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(destination = %destination.name, skipped, "restream destination fell behind; skipping to a keyframe");
                        waiting_for_keyframe = true;
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                line = progress_lines.next_line() => match line {
                    Ok(Some(line)) => {
                        // ffmpeg reports its output time: data reaches the destination.
                        let sending = line
                            .strip_prefix("out_time_us=")
                            .and_then(|v| v.trim().parse::<i64>().ok())
                            .is_some_and(|us| us > 0);
                        if sending {
                            update(progress, |p| {
                                if p.status != RestreamStatus::Live {
                                    p.status = RestreamStatus::Live;
                                    p.live_since = Some(Instant::now());
                                    p.error = None;
                                }
                            });
                        }
                    }
                    Ok(None) | Err(_) => return Err("ffmpeg exited".to_owned()),
                },
            }
        }
    }
    .await;
    match result {
        Ok(()) => {
            // The stream ended: let ffmpeg flush and close the connection.
            drop(stdin);
            let _ = tokio::time::timeout(FINISH_TIMEOUT, child.wait()).await;
            let _ = child.start_kill();
            errors.abort();
            Ok(())
        }
        Err(what) => {
            drop(stdin);
            let status = tokio::time::timeout(FINISH_TIMEOUT, child.wait()).await;
            let _ = child.start_kill();
            // Let the last words on stderr arrive.
            let _ = tokio::time::timeout(Duration::from_secs(1), errors).await;
            let what = match status {
                Ok(Ok(status)) if !status.success() => format!("{what} ({status})"),
                _ => what,
            };
            Err(failed(what))
        }
    }
}

/// Writes to ffmpeg, or says why it cannot.
async fn write(stdin: &mut tokio::process::ChildStdin, bytes: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, stdin.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("the connection closed".to_owned()),
        Err(_) => Err("the destination stopped taking data".to_owned()),
    }
}

/// Whether a destination may start (or resume) with `tag`: a video keyframe, or any audio
/// frame of a stream without video.
fn starts_picture(tag: &Tag, has_video: bool) -> bool {
    match tag.kind() {
        TagKind::Video(keyframe) => keyframe,
        TagKind::Audio => !has_video,
        _ => false,
    }
}

//! One stream's encoder: a supervised `ffmpeg` (at a lower priority) that reads the live
//! Matroska the engine's restream tap writes (on stdin) and writes FLV with H264 and AAC (on
//! stdout). H264 from the publisher is passed through; VP8/VP9 is decoded and encoded once,
//! at the publisher's resolution, with a keyframe every 2 s; Opus becomes AAC. The FLV is cut
//! into tags and handed to every destination through a [`Fanout`]: a broadcast channel that
//! never waits for a slow destination (it skips to the next keyframe instead), and the
//! prelude a destination starting mid-stream needs.

use bytes::Bytes;
use directo_media::RecordingTracks;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{broadcast, mpsc, watch};

use super::flv::{FlvReader, Prelude, Tag};

/// Tags a destination may fall behind by before it skips to the next keyframe (about ten
/// seconds of a 30 fps stream with its audio).
const FANOUT_CAPACITY: usize = 1024;
/// How much nicer than the server the ffmpeg processes run.
pub(crate) const NICENESS: &str = "10";

/// How the encoders run.
#[derive(Debug, Clone)]
pub struct RestreamConfig {
    /// The ffmpeg program.
    pub ffmpeg: String,
    /// H264 bitrate when the publisher's video is encoded (VP8/VP9), in kbit/s.
    pub video_kbps: u32,
    /// AAC bitrate, in kbit/s.
    pub audio_kbps: u32,
    /// Destinations one stream may have.
    pub max_per_stream: usize,
}

impl Default for RestreamConfig {
    fn default() -> Self {
        RestreamConfig {
            ffmpeg: "ffmpeg".to_owned(),
            video_kbps: 2500,
            audio_kbps: 128,
            max_per_stream: 8,
        }
    }
}

/// The FLV of one encoder run, for its destinations.
#[derive(Debug, Clone)]
pub(crate) struct Fanout {
    pub tags: broadcast::Sender<Tag>,
    pub prelude: watch::Receiver<Prelude>,
    /// Whether the stream has video (a destination then starts at a keyframe).
    pub has_video: bool,
}

/// The encoder's arguments for a stream with `tracks`.
pub(crate) fn encoder_args(config: &RestreamConfig, tracks: RecordingTracks) -> Vec<String> {
    let mut args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostats",
        "-analyzeduration",
        "2000000",
        "-probesize",
        "2000000",
        "-f",
        "matroska",
        "-i",
        "pipe:0",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(codec) = tracks.video {
        args.extend(["-map", "0:v:0"].map(str::to_owned));
        if codec.mime_type().eq_ignore_ascii_case("video/H264") {
            args.extend(["-c:v", "copy"].map(str::to_owned));
        } else {
            let kbps = config.video_kbps.max(100);
            args.extend([
                "-c:v".to_owned(),
                "libx264".to_owned(),
                "-preset".to_owned(),
                "veryfast".to_owned(),
                "-tune".to_owned(),
                "zerolatency".to_owned(),
                "-pix_fmt".to_owned(),
                "yuv420p".to_owned(),
                "-b:v".to_owned(),
                format!("{kbps}k"),
                "-maxrate".to_owned(),
                format!("{kbps}k"),
                "-bufsize".to_owned(),
                format!("{}k", kbps * 2),
                "-force_key_frames".to_owned(),
                "expr:gte(t,n_forced*2)".to_owned(),
                "-x264-params".to_owned(),
                "scenecut=0".to_owned(),
            ]);
        }
    }
    if tracks.audio.is_some() {
        args.extend([
            "-map".to_owned(),
            "0:a:0".to_owned(),
            "-c:a".to_owned(),
            "aac".to_owned(),
            "-b:a".to_owned(),
            format!("{}k", config.audio_kbps.max(32)),
            "-ar".to_owned(),
            "48000".to_owned(),
            "-ac".to_owned(),
            "2".to_owned(),
            // Gaps (a publisher's reconnect) become silence, so audio keeps its clock.
            "-af".to_owned(),
            "aresample=async=1000".to_owned(),
        ]);
    }
    args.extend(["-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1"].map(str::to_owned));
    args
}

impl Fanout {
    /// A destination's end: it sees the tags from now on.
    pub(crate) fn feed(&self) -> Feed {
        Feed {
            tags: self.tags.subscribe(),
            prelude: self.prelude.clone(),
            has_video: self.has_video,
        }
    }
}

/// What one destination reads of the fan-out. It holds no sender: when the encoder run
/// ends, its tags channel closes.
#[derive(Debug)]
pub(crate) struct Feed {
    pub tags: broadcast::Receiver<Tag>,
    pub prelude: watch::Receiver<Prelude>,
    pub has_video: bool,
}

/// A new fan-out, and the ends the encoder run keeps.
pub(crate) fn fanout(has_video: bool) -> (Fanout, watch::Sender<Prelude>) {
    let (tags, _) = broadcast::channel(FANOUT_CAPACITY);
    let (prelude_tx, prelude) = watch::channel(Prelude::default());
    (
        Fanout {
            tags,
            prelude,
            has_video,
        },
        prelude_tx,
    )
}

/// Runs `stream`'s encoder until its input ends (the tap ended) or it fails: `input` goes to
/// its stdin, its FLV to `tags` and `prelude`. Returns why it ended, if it failed.
pub(crate) async fn run(
    config: Arc<RestreamConfig>,
    stream: String,
    tracks: RecordingTracks,
    mut input: mpsc::Receiver<Bytes>,
    tags: broadcast::Sender<Tag>,
    prelude: watch::Sender<Prelude>,
) -> Result<(), String> {
    let mut child = Command::new("nice")
        .arg("-n")
        .arg(NICENESS)
        .arg(&config.ffmpeg)
        .args(encoder_args(&config, tracks))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", config.ffmpeg))?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("the encoder's pipes are missing".to_owned());
    };
    tracing::info!(%stream, pid = child.id(), "restream encoder started");
    let feed = async move {
        while let Some(chunk) = input.recv().await {
            if stdin.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // End of input: ffmpeg flushes and exits.
        drop(stdin);
    };
    let log = {
        let stream = stream.clone();
        async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut last = None;
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(%stream, "restream encoder: {}", line.trim());
                last = Some(line);
            }
            last
        }
    };
    let read = async move {
        let mut reader = FlvReader::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => return Ok::<(), String>(()),
                Ok(n) => n,
            };
            reader.extend(&buf[..n]);
            while let Some(tag) = reader.next_tag().map_err(|e| e.to_string())? {
                let header = reader.header().cloned();
                let kept = prelude.send_if_modified(|p| {
                    if p.header.is_none() {
                        p.header = header;
                    }
                    p.keep(&tag)
                });
                if !kept {
                    // Nobody listening is fine: destinations come and go.
                    let _ = tags.send(tag);
                }
            }
        }
    };
    let feed = tokio::spawn(feed);
    let (last_error, read) = tokio::join!(log, read);
    // The encoder is gone: the tap's writes fail from here on, which ends the tap.
    feed.abort();
    let status = child.wait().await.map_err(|e| e.to_string())?;
    tracing::info!(%stream, %status, "restream encoder ended");
    read?;
    if status.success() {
        Ok(())
    } else {
        Err(last_error.unwrap_or_else(|| format!("the encoder exited with {status}")))
    }
}

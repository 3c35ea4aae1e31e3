//! Every live stream is recorded: real VP8 (or H264) and Opus published over WHIP end up in a
//! WebM (or Matroska) file that plays like the original. Judged with ffprobe and ffmpeg on
//! what a viewer of the file would notice: the codecs, how long it plays, how many pictures
//! it shows, whether it decodes without a single error, whether it can be seeked, and whether
//! it downloads through the API (with `Range`, as a `<video>` element fetches it).
//!
//! Needs Debian's `ffmpeg`/`ffprobe` (`apt-get install -y ffmpeg`) and `cargo build -p directo`.

use anyhow::{Context, ensure};
use directo_tests::ffmpeg::{
    ProbedPacket, ProbedStream, SourceVideo, decode_errors, decoded_video_frames, has_cues,
    probe_duration, probe_packets, probe_streams, seek_errors,
};
use directo_tests::recordings::{recording_path, wait_finished};
use directo_tests::{
    CONNECT_TIMEOUT, MediaPublisher, MediaPublisherConfig, MediaSource, SentMedia, TestServer,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use signaling_proto::RecordingEntry;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a publisher may take to send its source (it is paced in real time).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to finish a file once its publisher left: it waits 10 s for
/// the publisher to come back first.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// A keyframe every second at 30 fps.
const GOP: u32 = 30;
/// How far the file's duration may be from the media sent while the server recorded. The
/// recording starts with the first frame the recorder gets (audio at once, video at the first
/// keyframe: see [`recording_began_at`]) and ends with the last frame the server got, so on a
/// lossless local link both ends are known, to the frame; the slack covers how the muxer
/// rounds the last frame's duration (up to one video frame, 33 ms), a frame more or less at
/// either end, and the publisher's pacing jitter on a loaded 2-core machine.
const DURATION_TOLERANCE_MS: f64 = 300.0;

/// The keyframe (its send time, ms) a recording of `recorded_frames` pictures began at: the
/// one from which that many frames were sent, give or take one.
///
/// The server starts the recorder once every track of the publisher is open (on their first
/// packets), so the keyframe that opened the video has usually gone by; it then asks for a
/// keyframe. A browser answers within a round trip; a publisher sending a file cannot, so the
/// recording begins at the source's next keyframe, at most one GOP (1 s) later. Anything
/// later than that means the recorder lost a keyframe.
fn recording_began_at(sent: &SentMedia, recorded_frames: usize) -> anyhow::Result<u64> {
    let keyframes = sent.keyframes_ms();
    let first = *keyframes.first().context("no keyframe sent")?;
    let began = keyframes
        .iter()
        .copied()
        .find(|&at| sent.video_frames_from(at).abs_diff(recorded_frames) <= 1)
        .with_context(|| {
            format!(
                "{recorded_frames} video frames recorded: not the frames from any keyframe on \
                 (keyframes at {keyframes:?} ms, {} frames from the first)",
                sent.video_frames_from(first)
            )
        })?;
    ensure!(
        began <= first + 1_000,
        "the recording began at the keyframe of {began} ms, over a GOP after the first ({first} ms)"
    );
    Ok(began)
}

/// Publishes `source` to `stream`, waits until it is all sent, leaves with DELETE and waits
/// for the file to be finished. Returns what was sent and the one recording made.
async fn publish_and_finish(
    server: &TestServer,
    stream: &str,
    source: &MediaSource,
    config: MediaPublisherConfig,
) -> anyhow::Result<(SentMedia, RecordingEntry, u64)> {
    let publisher = MediaPublisher::connect_whip(
        server.http(),
        &server.whip_url(stream),
        Some(server.publish_key()),
        source,
        config,
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let (sent, keyframe_requests) = publisher.finish(server.http(), SEND_TIMEOUT).await?;
    let mut entries = wait_finished(server, stream, FINISH_TIMEOUT).await?;
    ensure!(
        entries.len() == 1,
        "one publish made {} recordings: {entries:?}",
        entries.len()
    );
    Ok((sent, entries.remove(0), keyframe_requests))
}

/// When the recorded media starts, in send time (ms): the earlier of the keyframe the video
/// began at and the first audio frame recorded. Audio is recorded from the moment the recorder
/// starts; every audio frame after that arrives (a lossless local link), so the recorded ones
/// are the last `recorded_audio` sent.
fn recorded_from_ms(sent: &SentMedia, video_began: u64, recorded_audio: usize) -> u64 {
    let audio: Vec<u64> = sent.audio().map(|f| f.at_ms).collect();
    let first_audio = audio
        .len()
        .checked_sub(recorded_audio)
        .and_then(|i| audio.get(i))
        .copied()
        .unwrap_or(video_began);
    first_audio.min(video_began)
}

/// The streams and packets of a file, split by kind.
struct Probed {
    streams: Vec<ProbedStream>,
    packets: Vec<ProbedPacket>,
}

impl Probed {
    fn of(file: &Path) -> anyhow::Result<Self> {
        Ok(Probed {
            streams: probe_streams(file)?,
            packets: probe_packets(file)?,
        })
    }

    fn codecs(&self) -> Vec<(String, String)> {
        self.streams
            .iter()
            .map(|s| (s.codec_type.clone(), s.codec_name.clone()))
            .collect()
    }

    fn packets_of(&self, kind: &str) -> Vec<&ProbedPacket> {
        self.packets
            .iter()
            .filter(|p| {
                self.streams
                    .get(p.stream_index)
                    .is_some_and(|s| s.codec_type == kind)
            })
            .collect()
    }
}

fn file_of(server: &TestServer, entry: &RecordingEntry) -> anyhow::Result<PathBuf> {
    let file = recording_path(server, entry);
    ensure!(file.is_file(), "{} is not on disk", file.display());
    Ok(file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_and_opus_are_recorded_to_a_seekable_webm_that_downloads() -> anyhow::Result<()> {
    const STREAM: &str = "rec-vp8";
    let server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::Vp8, 4, GOP)?;
    let (sent, entry, _) =
        publish_and_finish(&server, STREAM, &source, MediaPublisherConfig::default()).await?;

    // The API's view.
    ensure!(entry.id.ends_with(".webm"), "VP8 recorded as {}", entry.id);
    let mut codecs: Vec<String> = entry.codecs.iter().map(|c| c.to_lowercase()).collect();
    codecs.sort();
    assert_eq!(codecs, ["audio/opus", "video/vp8"], "{entry:?}");
    let file = file_of(&server, &entry)?;

    // ffprobe's view: the codecs, and the pictures from the first keyframe on.
    let probed = Probed::of(&file)?;
    let mut streams = probed.codecs();
    streams.sort();
    assert_eq!(
        streams,
        [
            ("audio".to_owned(), "opus".to_owned()),
            ("video".to_owned(), "vp8".to_owned())
        ]
    );
    let recorded_frames = probed.packets_of("video").len();
    let began = recording_began_at(&sent, recorded_frames)?;
    assert_eq!(
        decoded_video_frames(&file)? as usize,
        recorded_frames,
        "every recorded picture decodes"
    );

    // It plays as long as what was sent while recording, to the end of the last frame.
    let from = recorded_from_ms(&sent, began, probed.packets_of("audio").len());
    let sent_ms = (sent.end_ms() - from) as f64;
    let duration_ms = probe_duration(&file)?.context("ffprobe reports no duration")? * 1000.0;
    assert!(
        (duration_ms - sent_ms).abs() <= DURATION_TOLERANCE_MS,
        "the file plays {duration_ms:.0} ms, {sent_ms:.0} ms were sent"
    );
    assert!(
        (entry.duration * 1000.0 - duration_ms).abs() <= 50.0,
        "the API says {} s, ffprobe {duration_ms:.0} ms",
        entry.duration
    );

    // Not a single decoding error; seekable (Cues) in the middle.
    let errors = decode_errors(&file)?;
    assert!(errors.trim().is_empty(), "ffmpeg -xerror printed: {errors}");
    assert!(entry.seekable, "{entry:?}");
    assert!(has_cues(&file)?, "no Cues in {}", file.display());
    let errors = seek_errors(&file, 2.0)?;
    assert!(errors.trim().is_empty(), "seeking to 2 s: {errors}");

    // Downloads: a Range request gets exactly those bytes; the whole file is the file.
    let url = server.url(&format!("api/recordings/{}", entry.id));
    let on_disk = std::fs::read(&file)?;
    let response = server
        .http()
        .get(url.clone())
        .header(RANGE, "bytes=0-99")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let content_range = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        content_range.as_deref(),
        Some(format!("bytes 0-99/{}", on_disk.len()).as_str())
    );
    let head = response.bytes().await?;
    assert_eq!(head.len(), 100);
    assert_eq!(&head[..], &on_disk[..100]);
    let response = server.http().get(url).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()),
        Some(on_disk.len().to_string().as_str())
    );
    assert_eq!(response.bytes().await?.len(), on_disk.len());
    assert_eq!(entry.size as usize, on_disk.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_opus_are_recorded_to_matroska() -> anyhow::Result<()> {
    const STREAM: &str = "rec-h264";
    let server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::H264, 4, GOP)?;
    let (sent, entry, _) =
        publish_and_finish(&server, STREAM, &source, MediaPublisherConfig::default()).await?;

    ensure!(entry.id.ends_with(".mkv"), "H264 recorded as {}", entry.id);
    let file = file_of(&server, &entry)?;
    let probed = Probed::of(&file)?;
    let mut streams = probed.codecs();
    streams.sort();
    assert_eq!(
        streams,
        [
            ("audio".to_owned(), "opus".to_owned()),
            ("video".to_owned(), "h264".to_owned())
        ]
    );
    let errors = decode_errors(&file)?;
    assert!(errors.trim().is_empty(), "ffmpeg -xerror printed: {errors}");
    let recorded_frames = probed.packets_of("video").len();
    let began = recording_began_at(&sent, recorded_frames)?;
    assert_eq!(decoded_video_frames(&file)? as usize, recorded_frames);
    let from = recorded_from_ms(&sent, began, probed.packets_of("audio").len());
    let sent_ms = (sent.end_ms() - from) as f64;
    let duration_ms = probe_duration(&file)?.context("ffprobe reports no duration")? * 1000.0;
    assert!(
        (duration_ms - sent_ms).abs() <= DURATION_TOLERANCE_MS,
        "the file plays {duration_ms:.0} ms, {sent_ms:.0} ms were sent"
    );
    let errors = seek_errors(&file, 2.0)?;
    assert!(errors.trim().is_empty(), "seeking to 2 s: {errors}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_video_loss_still_records_a_clean_file() -> anyhow::Result<()> {
    const STREAM: &str = "rec-loss";
    const LOSS: f64 = 0.05;
    let server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::Vp8, 6, GOP)?;
    let config = MediaPublisherConfig {
        video_loss: LOSS,
        ..MediaPublisherConfig::default()
    };
    let (sent, entry, keyframe_requests) =
        publish_and_finish(&server, STREAM, &source, config).await?;
    let dropped = sent.video_packets_dropped();
    let packets: usize = sent.video().map(|f| f.packets).sum();
    assert!(
        dropped > 0,
        "the loss pattern dropped nothing of {packets} packets"
    );
    let damaged = sent.video().filter(|f| f.dropped > 0).count();
    eprintln!(
        "dropped {dropped} of {packets} video packets ({damaged} frames damaged); \
         the server asked for {keyframe_requests} keyframes"
    );

    let file = file_of(&server, &entry)?;
    // A damaged frame, or one that depends on it, is never written: the file decodes without a
    // single error, and the pictures from the last intact keyframe on are there.
    let errors = decode_errors(&file)?;
    assert!(errors.trim().is_empty(), "ffmpeg -xerror printed: {errors}");
    let probed = Probed::of(&file)?;
    let recorded_frames = probed.packets_of("video").len();
    let intact_frames = sent.video().filter(|f| f.dropped == 0).count();
    assert!(
        recorded_frames <= intact_frames,
        "{recorded_frames} frames recorded, only {intact_frames} arrived intact"
    );
    assert!(
        recorded_frames >= 30,
        "only {recorded_frames} frames recorded of {} sent",
        sent.video().count()
    );
    assert_eq!(decoded_video_frames(&file)? as usize, recorded_frames);
    // Audio was not touched by the loss: all of it is there.
    let audio_sent = sent.audio().count();
    let audio_recorded = probed.packets_of("audio").len();
    assert!(
        audio_recorded + 2 >= audio_sent,
        "{audio_recorded} audio frames recorded of {audio_sent} sent"
    );
    Ok(())
}

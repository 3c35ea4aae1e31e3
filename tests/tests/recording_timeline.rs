//! A recording's timeline is what was captured: audio that starts after the video starts
//! that much later in the file (the tracks stay in sync), sender reports that are a little
//! off (as aiortc's are) move no frame from its RTP spacing and leave the tracks in sync, and
//! a publisher who drops and comes back within the grace period continues the same file with
//! timestamps that only go forward, the gap in the file being the time it was away.
//!
//! The tests here measure time to tens of milliseconds, so they run one at a time (a lock)
//! rather than side by side on a small machine. Needs `ffmpeg`/`ffprobe` and `directo` built.

use anyhow::{Context, ensure};
use directo_tests::ffmpeg::{
    ProbedPacket, ProbedStream, SourceVideo, decode_errors, probe_packets, probe_streams,
};
use directo_tests::recordings::{recording_path, wait_finished};
use directo_tests::{
    CONNECT_TIMEOUT, MediaPublisher, MediaPublisherConfig, MediaSource, SentMedia, SkewedReports,
    TestServer,
};
use signaling_proto::RecordingEntry;
use std::path::Path;
use std::time::Duration;
use tokio::sync::Mutex;

/// One timing-sensitive test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The server finishes a file 10 s after its publisher left.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
const GOP: u32 = 30;
/// How far the audio-to-video start offset in the file may be from the one sent: what a viewer
/// would not notice as lip-sync error (ITU-R BT.1359 finds audio 45 ms early detectable, late
/// audio only from 125 ms). The file's offset comes through the publisher's sender reports,
/// whose RTP times the sending stack extrapolates from its wall clock, so a loaded machine's
/// send jitter moves it by tens of milliseconds while nothing in Directo is wrong.
const SYNC_TOLERANCE_MS: f64 = 45.0;
/// How far a frame may sit from its RTP spacing: the file counts whole milliseconds.
const SPACING_TOLERANCE_MS: f64 = 1.0;

/// Publishes the whole of `source` and leaves with DELETE; returns what was sent.
/// How a publisher's session ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// The presenter pressed Stop: WHIP `DELETE`.
    Stop,
    /// The connection is lost: the peer goes away without telling the server.
    Lost,
}

async fn publish_all(
    server: &TestServer,
    stream: &str,
    source: &MediaSource,
    config: MediaPublisherConfig,
    end: End,
) -> anyhow::Result<SentMedia> {
    let mut publisher = MediaPublisher::connect_whip(
        server.http(),
        &server.whip_url(stream),
        Some(server.publish_key()),
        source,
        config,
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let sent = publisher.wait_done(SEND_TIMEOUT).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    match end {
        End::Stop => {
            let status = publisher.disconnect(server.http()).await?;
            ensure!(status == 200 || status == 204, "DELETE answered {status}");
        }
        End::Lost => publisher.close().await?,
    }
    Ok(sent)
}

async fn only_recording(server: &TestServer, stream: &str) -> anyhow::Result<RecordingEntry> {
    let mut entries = wait_finished(server, stream, FINISH_TIMEOUT).await?;
    ensure!(
        entries.len() == 1,
        "expected one recording of {stream}, got {entries:?}"
    );
    Ok(entries.remove(0))
}

fn stream_of<'a>(streams: &'a [ProbedStream], kind: &str) -> anyhow::Result<&'a ProbedStream> {
    streams
        .iter()
        .find(|s| s.codec_type == kind)
        .with_context(|| format!("no {kind} stream in {streams:?}"))
}

/// The presentation times (s) of one stream's packets, in file order.
fn pts_of(packets: &[ProbedPacket], streams: &[ProbedStream], kind: &str) -> Vec<f64> {
    packets
        .iter()
        .filter(|p| {
            streams
                .get(p.stream_index)
                .is_some_and(|s| s.codec_type == kind)
        })
        .filter_map(|p| p.pts)
        .collect()
}

/// A recording of one publisher matched to what it sent.
struct Recorded {
    /// Presentation times of the video packets, s, in file order.
    video_pts: Vec<f64>,
    /// Presentation times of the audio packets, s, in file order.
    audio_pts: Vec<f64>,
    /// When each recorded video frame was sent, ms.
    video_sent_ms: Vec<u64>,
    /// When each recorded audio frame was sent, ms.
    audio_sent_ms: Vec<u64>,
}

impl Recorded {
    /// Which frames the file holds: the video from a keyframe on (the recorder starts when
    /// the publisher's tracks are open and waits for a keyframe), every audio frame from the
    /// recorder's start on (a lossless local link), so the last `audio_pts.len()` sent.
    fn read(sent: &SentMedia, file: &Path) -> anyhow::Result<Self> {
        let streams = probe_streams(file)?;
        let packets = probe_packets(file)?;
        let video_pts = pts_of(&packets, &streams, "video");
        let audio_pts = pts_of(&packets, &streams, "audio");
        let began = sent
            .keyframes_ms()
            .into_iter()
            .find(|&at| sent.video_frames_from(at).abs_diff(video_pts.len()) <= 1)
            .with_context(|| {
                format!(
                    "{} video frames recorded: not the frames from any keyframe on",
                    video_pts.len()
                )
            })?;
        let video_sent_ms = sent
            .video()
            .map(|f| f.at_ms)
            .filter(|&at| at >= began)
            .collect();
        let audio_sent: Vec<u64> = sent.audio().map(|f| f.at_ms).collect();
        let audio_sent_ms = audio_sent
            .len()
            .checked_sub(audio_pts.len())
            .filter(|_| !audio_pts.is_empty())
            .map(|first| audio_sent[first..].to_vec())
            .with_context(|| {
                format!(
                    "{} audio frames recorded, {} sent",
                    audio_pts.len(),
                    audio_sent.len()
                )
            })?;
        Ok(Recorded {
            video_pts,
            audio_pts,
            video_sent_ms,
            audio_sent_ms,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_that_starts_late_keeps_its_offset_to_the_video() -> anyhow::Result<()> {
    const STREAM: &str = "rec-late-audio";
    const AUDIO_DELAY: Duration = Duration::from_millis(500);
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::Vp8, 5, GOP)?;
    let config = MediaPublisherConfig {
        audio_delay: AUDIO_DELAY,
        ..MediaPublisherConfig::default()
    };
    let sent = publish_all(&server, STREAM, &source, config, End::Stop).await?;
    let first_audio = sent.audio().next().context("no audio sent")?.at_ms;
    let first_video = sent.video().next().context("no video sent")?.at_ms;
    // Opus frames sit on their own 20 ms grid, so the first one sent is within a frame of it.
    let delay = first_audio - first_video;
    ensure!(
        delay.abs_diff(AUDIO_DELAY.as_millis() as u64) < 20,
        "audio sent {delay} ms after the video"
    );

    let entry = only_recording(&server, STREAM).await?;
    let file = recording_path(&server, &entry);
    let errors = decode_errors(&file)?;
    assert!(errors.trim().is_empty(), "ffmpeg -xerror printed: {errors}");
    let streams = probe_streams(&file)?;
    let recorded = Recorded::read(&sent, &file)?;
    let began = recorded.video_sent_ms[0];
    let first_recorded_audio = recorded.audio_sent_ms[0];
    let sent_offset_ms = first_recorded_audio as f64 - began as f64;

    let video_start = stream_of(&streams, "video")?
        .start_time
        .context("no video start_time")?;
    let audio_start = stream_of(&streams, "audio")?
        .start_time
        .context("no audio start_time")?;
    let file_offset_ms = (audio_start - video_start) * 1000.0;
    eprintln!(
        "video recorded from the keyframe sent at {began} ms, audio from the frame sent at \
         {first_recorded_audio} ms; in the file video starts at {video_start:.3} s, audio at \
         {audio_start:.3} s"
    );
    assert!(
        (file_offset_ms - sent_offset_ms).abs() <= SYNC_TOLERANCE_MS,
        "audio starts {file_offset_ms:.0} ms after the video in the file, \
         {sent_offset_ms:.0} ms after it as sent"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_reports_that_are_off_move_no_frame_and_keep_the_tracks_in_sync()
-> anyhow::Result<()> {
    const STREAM: &str = "rec-skewed-reports";
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::Vp8, 20, GOP)?;
    let config = MediaPublisherConfig {
        skewed_reports: Some(SkewedReports {
            ntp_error: Duration::from_millis(30),
            seed: 0x5eed,
        }),
        ..MediaPublisherConfig::default()
    };
    let sent = publish_all(&server, STREAM, &source, config, End::Stop).await?;

    let entry = only_recording(&server, STREAM).await?;
    let file = recording_path(&server, &entry);
    let errors = decode_errors(&file)?;
    assert!(errors.trim().is_empty(), "ffmpeg -xerror printed: {errors}");
    let recorded = Recorded::read(&sent, &file)?;
    for (kind, pts, sent_ms) in [
        ("video", &recorded.video_pts, &recorded.video_sent_ms),
        ("audio", &recorded.audio_pts, &recorded.audio_sent_ms),
    ] {
        for (index, (written, sent)) in pts.windows(2).zip(sent_ms.windows(2)).enumerate() {
            let written_gap = (written[1] - written[0]) * 1000.0;
            let sent_gap = (sent[1] - sent[0]) as f64;
            assert!(
                (written_gap - sent_gap).abs() <= SPACING_TOLERANCE_MS + 1e-6,
                "{kind} frame {} is written {written_gap:.3} ms after the one before, sent \
                 {sent_gap} ms after it",
                index + 1
            );
        }
    }

    // The first frames recorded of each track: where they sit relative to each other in the
    // file is where they were captured.
    let sent_offset_ms = recorded.audio_sent_ms[0] as f64 - recorded.video_sent_ms[0] as f64;
    let file_offset_ms = (recorded.audio_pts[0] - recorded.video_pts[0]) * 1000.0;
    eprintln!(
        "first audio recorded was sent {sent_offset_ms:.0} ms after the first video, and is \
         written {file_offset_ms:.1} ms after it"
    );
    assert!(
        (file_offset_ms - sent_offset_ms).abs() <= SYNC_TOLERANCE_MS,
        "audio starts {file_offset_ms:.1} ms after the video in the file, \
         {sent_offset_ms:.0} ms after it as sent"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_who_comes_back_continues_the_same_file() -> anyhow::Result<()> {
    const STREAM: &str = "rec-reconnect";
    /// Past the 3 s after which a silent publisher may be replaced, well within the
    /// recording's 10 s grace.
    const AWAY: Duration = Duration::from_secs(4);
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::Vp8, 3, GOP)?;
    // The first connection is lost (not stopped): the recording waits for the publisher.
    let first = publish_all(
        &server,
        STREAM,
        &source,
        MediaPublisherConfig::default(),
        End::Lost,
    )
    .await?;
    tokio::time::sleep(AWAY).await;
    let second = publish_all(
        &server,
        STREAM,
        &source,
        MediaPublisherConfig::default(),
        End::Stop,
    )
    .await?;

    let entry = only_recording(&server, STREAM).await?;
    let file = recording_path(&server, &entry);
    let errors = decode_errors(&file)?;
    assert!(errors.trim().is_empty(), "ffmpeg -xerror printed: {errors}");

    let streams = probe_streams(&file)?;
    let packets = probe_packets(&file)?;
    for kind in ["video", "audio"] {
        let pts = pts_of(&packets, &streams, kind);
        ensure!(!pts.is_empty(), "no {kind} in the file");
        if let Some(step) = pts.windows(2).find(|w| w[1] <= w[0]) {
            panic!(
                "{kind} timestamps go from {:.3} s to {:.3} s",
                step[0], step[1]
            );
        }
    }

    // Both publishers are in it (each from one of its first two keyframes on), with a gap of
    // about the time the publisher was away between them.
    let video_pts = pts_of(&packets, &streams, "video");
    let per_publisher = |sent: &SentMedia| -> (usize, usize) {
        let keyframes = sent.keyframes_ms();
        let most = keyframes.first().map_or(0, |&k| sent.video_frames_from(k));
        let least = keyframes.get(1).map_or(0, |&k| sent.video_frames_from(k));
        (least, most)
    };
    let (least_1, most_1) = per_publisher(&first);
    let (least_2, most_2) = per_publisher(&second);
    let recorded = video_pts.len();
    assert!(
        (least_1 + least_2..=most_1 + most_2 + 1).contains(&recorded),
        "{recorded} video frames recorded; expected {}..={} from the two publishers",
        least_1 + least_2,
        most_1 + most_2
    );
    let (gap_at, gap) =
        video_pts
            .windows(2)
            .map(|w| (w[0], w[1] - w[0]))
            .fold(
                (0.0, 0.0),
                |best, step| if step.1 > best.1 { step } else { best },
            );
    eprintln!("the longest video gap is {gap:.3} s, after {gap_at:.3} s");
    assert!(
        gap >= AWAY.as_secs_f64() && gap <= AWAY.as_secs_f64() + 5.0,
        "the longest gap in the video is {gap:.3} s (after {gap_at:.3} s); the publisher was \
         away {AWAY:?} plus its reconnection"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presenter_who_stops_gets_a_finished_file_at_once() -> anyhow::Result<()> {
    const STREAM: &str = "rec-stop";
    /// Well under the 10 s a lost connection is waited for: only a deliberate stop
    /// finishes the file this soon.
    const WITHIN_GRACE: Duration = Duration::from_secs(5);
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::Vp8, 2, GOP)?;
    publish_all(
        &server,
        STREAM,
        &source,
        MediaPublisherConfig::default(),
        End::Stop,
    )
    .await?;
    let entries = wait_finished(&server, STREAM, WITHIN_GRACE)
        .await
        .context("a WHIP DELETE should finish the recording without waiting for the grace")?;
    ensure!(entries.len() == 1, "one recording expected: {entries:?}");
    let file = recording_path(&server, &entries[0]);
    let errors = decode_errors(&file)?;
    ensure!(errors.trim().is_empty(), "ffmpeg -xerror printed: {errors}");
    ensure!(
        entries[0].duration > 1.0,
        "the finished file has its duration: {:?}",
        entries[0]
    );
    Ok(())
}

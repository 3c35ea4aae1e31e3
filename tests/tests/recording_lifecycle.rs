//! A recording through the server's life: a crash (SIGKILL) mid-stream leaves a file that
//! plays up to its last cluster and that `directo recover` makes seekable; a clean shutdown
//! (SIGTERM) finishes the file; with `--no-record` nothing is recorded until the admin switch
//! turns recording on for a live stream.
//!
//! Needs `ffmpeg`/`ffprobe` and `directo` built (`cargo build -p directo`).

use anyhow::{Context, ensure};
use directo_tests::ffmpeg::{
    SourceVideo, decode_errors, decode_warnings, decoded_video_frames, has_cues, probe_duration,
    probe_packets, probe_streams, seek_errors,
};
use directo_tests::recordings::{
    list_recordings, recording_files, recording_path, recover, set_recording, stream_recordings,
    wait_finished,
};
use directo_tests::{
    CONNECT_TIMEOUT, MediaPublisher, MediaPublisherConfig, MediaSource, ServerOptions, TestServer,
};
use std::path::Path;
use std::time::Duration;

const GOP: u32 = 30;
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The server finishes a file 10 s after its publisher left.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

async fn start_publishing(
    server: &TestServer,
    stream: &str,
    source: &MediaSource,
) -> anyhow::Result<MediaPublisher> {
    let publisher = MediaPublisher::connect_whip(
        server.http(),
        &server.whip_url(stream),
        Some(server.publish_key()),
        source,
        MediaPublisherConfig::default(),
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    Ok(publisher)
}

/// The last video presentation time in a file, s.
fn last_video_pts(file: &Path) -> anyhow::Result<f64> {
    let streams = probe_streams(file)?;
    let video = streams
        .iter()
        .position(|s| s.codec_type == "video")
        .context("no video stream")?;
    probe_packets(file)?
        .iter()
        .filter(|p| p.stream_index == video)
        .filter_map(|p| p.pts)
        .reduce(f64::max)
        .context("no video packets")
}

/// Whether a line ffmpeg printed only says the file stops short, which is what a crash leaves
/// after the last complete cluster (an unknown-size Segment with nothing after it).
fn is_truncation_notice(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    [
        "truncat",
        "end of file",
        "eof",
        "invalid data found when processing input",
    ]
    .iter()
    .any(|notice| line.contains(notice))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_leaves_a_playable_file_that_recover_makes_seekable() -> anyhow::Result<()> {
    const STREAM: &str = "rec-crash";
    let mut server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::Vp8, 10, GOP)?;
    let publisher = start_publishing(&server, STREAM, &source).await?;
    publisher
        .wait_sent_until(4_500, SEND_TIMEOUT)
        .await
        .context("sending 4.5 s before the crash")?;
    server.kill();
    drop(publisher);

    let files = recording_files(&server, STREAM);
    ensure!(files.len() == 1, "after the crash: {files:?}");
    let file = &files[0];

    // It plays up to its last whole cluster: ffmpeg decodes it with at most a complaint
    // about where it stops, and more than a second of pictures decodes.
    let printed = decode_warnings(file)?;
    eprintln!("ffmpeg on the crashed file printed: {printed:?}");
    let complaints: Vec<&str> = printed
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_truncation_notice(l))
        .collect();
    assert!(
        complaints.is_empty(),
        "ffmpeg complains about more than the end: {complaints:#?}"
    );
    let decoded = decoded_video_frames(file)?;
    let last_pts = last_video_pts(file)?;
    assert!(
        decoded >= 30 && last_pts > 1.0,
        "only {decoded} pictures (to {last_pts:.3} s) decode from the crashed file"
    );

    // `directo recover` makes it a finished file: Cues, a duration, clean decoding, seekable.
    let said = recover(file).await?;
    eprintln!("directo recover: {said}");
    assert!(has_cues(file)?, "no Cues after recover");
    let duration = probe_duration(file)?.context("no duration after recover")?;
    assert!(
        (duration - last_pts).abs() <= 0.2,
        "recovered duration {duration:.3} s, last picture at {last_pts:.3} s"
    );
    let errors = decode_errors(file)?;
    assert!(
        errors.trim().is_empty(),
        "after recover, ffmpeg printed: {errors}"
    );
    let errors = seek_errors(file, last_pts / 2.0)?;
    assert!(errors.trim().is_empty(), "seeking after recover: {errors}");
    assert_eq!(
        decoded_video_frames(file)?,
        decoded,
        "recover changed the pictures"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_finishes_the_file() -> anyhow::Result<()> {
    const STREAM: &str = "rec-sigterm";
    let mut server = TestServer::start().await?;
    let source = MediaSource::make(SourceVideo::Vp8, 10, GOP)?;
    let publisher = start_publishing(&server, STREAM, &source).await?;
    publisher.wait_sent_until(3_500, SEND_TIMEOUT).await?;
    let sent_video = publisher.sent().video().count();
    let clean = server.terminate(Duration::from_secs(20)).await?;
    assert!(clean, "directo exited with an error after SIGTERM");
    drop(publisher);

    let files = recording_files(&server, STREAM);
    ensure!(files.len() == 1, "after SIGTERM: {files:?}");
    let file = &files[0];
    assert!(has_cues(file)?, "no Cues in a file finished by shutdown");
    let duration = probe_duration(file)?.context("no duration in a finished file")?;
    assert!(
        duration > 1.5,
        "{duration:.3} s recorded of 3.5 s sent before SIGTERM"
    );
    let errors = decode_errors(file)?;
    assert!(errors.trim().is_empty(), "ffmpeg printed: {errors}");
    let errors = seek_errors(file, duration / 2.0)?;
    assert!(errors.trim().is_empty(), "seeking: {errors}");
    let decoded = decoded_video_frames(file)? as usize;
    assert!(
        decoded + 2 * GOP as usize >= sent_video && decoded <= sent_video + 3,
        "{decoded} pictures recorded, {sent_video} sent"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_record_records_nothing_until_the_admin_switch_turns_it_on() -> anyhow::Result<()> {
    const STREAM: &str = "rec-switch";
    let server = TestServer::start_with(ServerOptions {
        // `--dev`: the admin API needs no token.
        extra_args: vec!["--no-record".into(), "--dev".into()],
        ..ServerOptions::default()
    })
    .await?;
    let source = MediaSource::make(SourceVideo::Vp8, 10, GOP)?;
    let publisher = start_publishing(&server, STREAM, &source).await?;
    publisher.wait_sent_until(2_500, SEND_TIMEOUT).await?;

    let listed = list_recordings(&server).await?;
    assert!(listed.is_empty(), "--no-record recorded {listed:?}");
    let files = recording_files(&server, STREAM);
    assert!(files.is_empty(), "--no-record wrote {files:?}");

    set_recording(&server, STREAM, true, None).await?;
    let switched_at = publisher.sent().end_ms();
    directo_tests::wait_for(
        "a recording to appear after the admin switch",
        Duration::from_secs(10),
        || async {
            let files = recording_files(&server, STREAM);
            let listed = stream_recordings(&server, STREAM).await?;
            Ok((!files.is_empty() && !listed.is_empty()).then_some(()))
        },
    )
    .await
    .context("the admin switch did not start recording the live stream")?;

    let (sent, _) = publisher.finish(server.http(), SEND_TIMEOUT).await?;
    let entries = wait_finished(&server, STREAM, FINISH_TIMEOUT).await?;
    ensure!(entries.len() == 1, "{entries:?}");
    let file = recording_path(&server, &entries[0]);
    let errors = decode_errors(&file)?;
    assert!(errors.trim().is_empty(), "ffmpeg printed: {errors}");
    // Recorded from the switch (and the next keyframe) on, not from the start.
    let recorded = decoded_video_frames(&file)? as usize;
    let after_switch = sent.video_frames_from(switched_at);
    assert!(
        recorded <= after_switch + 1 && recorded + 2 * GOP as usize >= after_switch,
        "{recorded} pictures recorded, {after_switch} sent after the switch"
    );
    Ok(())
}

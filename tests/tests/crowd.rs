//! Two hundred viewers joining one stream at the same moment (concurrent WHEP POSTs) all
//! connect and all receive audio and video.

use directo_tests::{MediaKind, PublisherConfig, ServerOptions, TestServer, Viewer, ViewerConfig};
use std::time::{Duration, Instant};

const VIEWERS: usize = 200;
const STREAM: &str = "crowd";
/// Generous: two hundred DTLS handshakes on a loaded two-core machine, clients included.
const CROWD_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_viewers_join_at_once_and_all_get_video() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        extra_args: [
            "--max-sessions-per-ip",
            "1000",
            "--max-requests-per-minute",
            "1000000",
            "--new-sessions-burst",
            "1000",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..ServerOptions::default()
    })
    .await?;
    let _publisher = server.publish(STREAM, PublisherConfig::default()).await?;

    let started = Instant::now();
    let config = ViewerConfig {
        record_headers: false,
        ..ViewerConfig::default()
    };
    let joins = (0..VIEWERS).map(|_| server.view(STREAM, config.clone()));
    let viewers: Vec<Viewer> = futures::future::try_join_all(joins).await?;
    let answered = started.elapsed();

    let waits = viewers
        .iter()
        .map(|v| v.wait_for_packets(10, 10, CROWD_TIMEOUT));
    futures::future::try_join_all(waits).await?;
    eprintln!(
        "{VIEWERS} viewers: every answer in {:.1} s, media at all of them after {:.1} s",
        answered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let info = server.stream(STREAM).await?;
    assert_eq!(info.map(|i| i.viewers), Some(VIEWERS));
    // Every one of them can start decoding: each got a keyframe.
    directo_tests::wait_until("a keyframe at every viewer", CROWD_TIMEOUT, || {
        viewers.iter().all(|v| v.keyframes() >= 1)
    })
    .await?;
    let video: u64 = viewers.iter().map(|v| v.packets(MediaKind::Video)).sum();
    eprintln!("{video} video packets delivered in all");
    Ok(())
}

//! One publisher, twenty viewers: every viewer gets audio and video, its video begins at a
//! keyframe ([`directo_tests::Publisher::began_at_a_keyframe`]), and it misses no more than a
//! busy machine's loopback can drop ([`directo_tests::LOSS_BUDGET`]) — with the default fan-out
//! (one shard per core) and with the viewers spread over four fan-out threads, each encrypting
//! and sending for its own share of them.

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, PublisherConfig, ServerOptions, TestServer,
    ViewerConfig,
};

const STREAM: &str = "broadcast";
const VIEWERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_receive_the_publishers_audio_and_video() -> anyhow::Result<()> {
    broadcast(TestServer::start().await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_sharded_over_four_fanout_threads_all_get_continuous_media() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        extra_args: vec!["--fanout-threads".into(), "4".into()],
        ..ServerOptions::default()
    })
    .await?;
    broadcast(server).await
}

async fn broadcast(server: TestServer) -> anyhow::Result<()> {
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    let viewers = futures::future::try_join_all(
        (0..VIEWERS).map(|_| server.view(STREAM, ViewerConfig::default())),
    )
    .await
    .context("a viewer could not join over WHEP")?;
    for (i, viewer) in viewers.iter().enumerate() {
        viewer
            .wait_connected(CONNECT_TIMEOUT)
            .await
            .with_context(|| format!("viewer {i} did not connect"))?;
    }
    // About two seconds of media each: 50 audio packets a second, ~120 video packets a second.
    for (i, viewer) in viewers.iter().enumerate() {
        viewer
            .wait_for_packets(100, 200, MEDIA_TIMEOUT)
            .await
            .with_context(|| format!("viewer {i} did not get media"))?;
    }

    for (i, viewer) in viewers.iter().enumerate() {
        let report = viewer.report();
        let first = report
            .video
            .first
            .with_context(|| format!("viewer {i}: no video"))?;
        assert!(
            publisher.began_at_a_keyframe(&first),
            "viewer {i}: video must begin at a keyframe; the first packet {first:?} is neither \
             one's start nor inside one the viewer's handshake ate"
        );
        assert_eq!(
            report.video.codec.as_deref(),
            Some("video/VP8"),
            "viewer {i}"
        );
        assert_eq!(
            report
                .audio
                .codec
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("audio/opus"),
            "viewer {i}"
        );
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let log = report.track(kind);
            let sequence = log.sequence();
            assert!(
                sequence.within_loss_budget(),
                "viewer {i} {kind:?}: {} of {} packets never arrived on loopback (a jump in the \
                 numbering counts as missing): {:?}",
                sequence.missing,
                sequence.unique + sequence.missing,
                sequence.discontinuities
            );
            assert_eq!(log.ssrcs().len(), 1, "viewer {i} {kind:?}: SSRC changed");
        }
    }

    let info = server
        .stream(STREAM)
        .await?
        .context("GET /api/streams/broadcast is 404 while live")?;
    assert!(info.live, "{info:?}");
    assert_eq!(info.viewers, VIEWERS, "{info:?}");
    let mut codecs: Vec<String> = info
        .tracks
        .iter()
        .map(|t| t.codec.to_ascii_lowercase())
        .collect();
    codecs.sort();
    assert_eq!(codecs, ["audio/opus", "video/vp8"], "{info:?}");
    Ok(())
}

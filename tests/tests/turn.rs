//! Viewers behind a TURN server: a viewer that may only use relay candidates of a loopback
//! `coturn` (long-term credentials) connects to Directo and receives its audio and video.
//! Wrong TURN credentials gather no relay candidate, so such a viewer cannot connect at all.

use directo_tests::turn::{RelayViewer, TURN_PASSWORD, TURN_USER, TurnServer};
use directo_tests::{CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, PublisherConfig, TestServer};

const STREAM: &str = "relayed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_viewer_receives_media_through_turn() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(TurnServer::ensure_installed).await??;
    let server = TestServer::start().await?;
    let turn = TurnServer::start(&server.data_dir()).await?;
    let _publisher = server.publish(STREAM, PublisherConfig::default()).await?;

    let viewer = RelayViewer::connect(
        server.http(),
        &server.whep_url(STREAM),
        &turn.url(),
        TURN_USER,
        TURN_PASSWORD,
    )
    .await?;
    // Relay only: every candidate of the offer is an address coturn allocated, none is the
    // viewer's own.
    let candidates: Vec<&str> = viewer
        .offer()
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .collect();
    let allocated = |line: &&str| {
        // a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(4) == Some(&"127.0.0.1")
            && fields
                .get(5)
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| turn.relay_ports().contains(&p))
            && fields.get(7) == Some(&"relay")
    };
    assert!(
        !candidates.is_empty() && candidates.iter().all(allocated),
        "the offer's candidates: {candidates:?}, relay ports {:?}",
        turn.relay_ports()
    );

    viewer
        .wait_connected(CONNECT_TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n---- turnserver log ----\n{}", turn.log()))?;
    viewer.wait_for_packets(25, 60, MEDIA_TIMEOUT).await?;
    eprintln!(
        "over TURN: {} audio and {} video packets",
        viewer.packets(MediaKind::Audio),
        viewer.packets(MediaKind::Video)
    );
    viewer.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_turn_credentials_gather_no_relay_candidate() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(TurnServer::ensure_installed).await??;
    let server = TestServer::start().await?;
    let turn = TurnServer::start(&server.data_dir()).await?;
    let _publisher = server.publish(STREAM, PublisherConfig::default()).await?;

    let attempt = RelayViewer::connect(
        server.http(),
        &server.whep_url(STREAM),
        &turn.url(),
        TURN_USER,
        "not-the-password",
    )
    .await;
    if let Ok(viewer) = attempt {
        assert!(
            !viewer.offer().contains("typ relay"),
            "a relay candidate with a wrong password:\n{}",
            viewer.offer()
        );
        assert!(
            viewer
                .wait_connected(std::time::Duration::from_secs(10))
                .await
                .is_err(),
            "connected without a relay"
        );
    }
    Ok(())
}

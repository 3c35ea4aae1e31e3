//! Edges pull over WebRTC: a stream published on node a is watched on b and c, each of which
//! pulls it once from a (a WHEP session with a node token) and fans it out to its own
//! viewers; when a dies, the publisher comes back on b and the viewers on c keep watching
//! without reconnecting.

use directo_tests::{
    CONNECT_TIMEOUT, Cluster, MediaKind, Publisher, PublisherConfig, Result, TestServer, Viewer,
    ViewerConfig, wait_for,
};
use std::time::Duration;

/// Media through a relay: the pull, its first keyframe, the viewers' own keyframes.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);

async fn wait_metric(node: &TestServer, what: &str, name: &str, value: f64) -> Result<()> {
    wait_for(what, MEDIA_TIMEOUT, || async {
        Ok((node.metric(name).await? == Some(value)).then_some(()))
    })
    .await
}

/// Waits until `viewer` got `more` video packets beyond what it had and a keyframe among
/// them: it decodes a moving picture.
async fn keeps_decoding(viewer: &Viewer, more: u64) -> Result<()> {
    let (packets, keyframes) = (viewer.packets(MediaKind::Video), viewer.keyframes());
    wait_for("video to keep arriving", MEDIA_TIMEOUT, || async {
        Ok(
            (viewer.packets(MediaKind::Video) >= packets + more && viewer.keyframes() > keyframes)
                .then_some(()),
        )
    })
    .await
}

/// A publisher of `stream` on `origin` and a viewer on `edge` that receives its media.
async fn watching(
    origin: &TestServer,
    edge: &TestServer,
    stream: &str,
) -> Result<(Publisher, Viewer)> {
    let publisher = origin.publish(stream, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = edge.view(stream, ViewerConfig::default()).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    viewer.wait_for_packets(20, 60, MEDIA_TIMEOUT).await?;
    Ok((publisher, viewer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_pull_once_and_serve_their_viewers() -> anyhow::Result<()> {
    const STREAM: &str = "relayed";
    let Some(cluster) = Cluster::start(&["a", "b", "c"]).await? else {
        return Ok(());
    };
    let (a, b, c) = (cluster.node("a"), cluster.node("b"), cluster.node("c"));
    let publisher = a.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    let mut viewers = Vec::new();
    for node in [b, b, b, c, c] {
        let viewer = node.view(STREAM, ViewerConfig::default()).await?;
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
        viewers.push(viewer);
    }
    for viewer in &viewers {
        viewer
            .wait_for_packets(20, 60, MEDIA_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!("{e}\nb: {}\nc: {}", b.log_tail(), c.log_tail()))?;
        assert!(viewer.keyframes() > 0, "an edge viewer got no keyframe");
    }

    // One pull per edge, whatever the number of viewers there.
    wait_metric(a, "a to serve two relay pulls", "directo_relay_pulls", 2.0).await?;
    wait_metric(b, "b to relay one stream", "directo_relayed_streams", 1.0).await?;
    wait_metric(c, "c to relay one stream", "directo_relayed_streams", 1.0).await?;
    // The pulls are not audience: the cluster counts the five viewers, not the two pulls.
    wait_for("a to count five viewers", MEDIA_TIMEOUT, || async {
        let info = a.stream(STREAM).await?;
        Ok(info.filter(|i| i.live && i.viewers == 5).map(|_| ()))
    })
    .await?;

    // A keyframe asked for on an edge reaches the publisher through the relay.
    let before = viewers[3].keyframes();
    viewers[3].request_keyframe().await?;
    wait_for("the requested keyframe on c", MEDIA_TIMEOUT, || async {
        Ok((viewers[3].keyframes() > before).then_some(()))
    })
    .await?;

    // Every viewer of an edge gone: the edge lets the pull go.
    for viewer in viewers.drain(3..) {
        viewer.disconnect(c.http()).await?;
    }
    wait_metric(a, "a to serve one relay pull", "directo_relay_pulls", 1.0).await?;
    wait_metric(c, "c to relay nothing", "directo_relayed_streams", 0.0).await?;
    // b's viewers never noticed.
    keeps_decoding(&viewers[0], 30).await?;
    drop(publisher);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_viewers_stay_when_the_origin_dies_and_the_publisher_returns_elsewhere()
-> anyhow::Result<()> {
    const STREAM: &str = "origin-lost";
    let Some(mut cluster) = Cluster::start(&["a", "b", "c"]).await? else {
        return Ok(());
    };
    let (publisher, viewer) = watching(cluster.node("a"), cluster.node("c"), STREAM).await?;

    cluster.node_mut("a").kill();
    drop(publisher);
    // The publisher comes back on b once a's claim on the stream has lapsed.
    let b = cluster.node("b");
    let publisher = wait_for("b to take the stream", MEDIA_TIMEOUT, || async {
        match b.publish(STREAM, PublisherConfig::default()).await {
            Ok(publisher) => Ok(Some(publisher)),
            Err(_) => Ok(None),
        }
    })
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    // c pulls from the new origin by itself; its viewer, still on its first connection,
    // decodes the new publisher's picture.
    let c = cluster.node("c");
    keeps_decoding(&viewer, 60)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\nc: {}", c.log_tail()))?;
    assert_eq!(
        viewer.state(),
        directo_tests::RTCPeerConnectionState::Connected
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edges_viewers_watch_again_from_another_node_when_it_dies() -> anyhow::Result<()> {
    const STREAM: &str = "edge-lost";
    let Some(mut cluster) = Cluster::start(&["a", "b", "c"]).await? else {
        return Ok(());
    };
    let (publisher, viewer) = watching(cluster.node("a"), cluster.node("b"), STREAM).await?;

    cluster.node_mut("b").kill();
    // The viewer's client (the SDK does this by itself) opens a new session on a node that
    // is up: c, which pulls the stream from a in turn.
    let again = cluster
        .node("c")
        .view(STREAM, ViewerConfig::default())
        .await?;
    again.wait_connected(CONNECT_TIMEOUT).await?;
    again.wait_for_packets(20, 60, MEDIA_TIMEOUT).await?;
    assert!(again.keyframes() > 0);
    // The origin lets b's pull go once its connection is found dead; c's stays.
    wait_metric(
        cluster.node("a"),
        "a to serve c's pull alone",
        "directo_relay_pulls",
        1.0,
    )
    .await?;
    drop(viewer);
    drop(publisher);
    Ok(())
}

//! Redis going away and coming back: a stream already flowing keeps flowing and its
//! publisher may come back to the node that holds it, what needs the directory answers
//! `503 cluster_unavailable` with `Retry-After`, and once Redis is back (empty) the nodes
//! re-register and re-claim without a restart.

use directo_tests::{
    CONNECT_TIMEOUT, Cluster, MEDIA_TIMEOUT, MediaKind, PublisherConfig, Result, TestServer,
    ViewerConfig, wait_for,
};
use signaling_proto::{ErrorBody, ErrorCode};
use std::time::Duration;

const KEPT: &str = "kept";
const OTHER: &str = "other";
/// Recovery goes through a heartbeat or two; generous for a loaded machine.
const RECOVERED_WITHIN: Duration = Duration::from_secs(30);

/// A WHIP POST of a placeholder offer: the directory is asked before the offer is parsed.
async fn try_publish(node: &TestServer, stream: &str) -> Result<reqwest::Response> {
    Ok(node
        .http()
        .post(node.whip_url(stream))
        .bearer_auth(node.publish_key())
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_streams_flow_and_the_directory_answers_503_until_it_is_back()
-> anyhow::Result<()> {
    let Some(mut cluster) = Cluster::start(&["a", "b"]).await? else {
        return Ok(());
    };
    let publisher = cluster
        .node("a")
        .publish(KEPT, PublisherConfig::default())
        .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = cluster
        .node("a")
        .view(KEPT, ViewerConfig::default())
        .await?;
    viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;

    cluster.redis_mut().kill();
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let response = try_publish(b, OTHER).await?;
    assert_eq!(response.status().as_u16(), 503);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
    let body: ErrorBody = response.json().await?;
    assert_eq!(body.code, ErrorCode::ClusterUnavailable, "{body:?}");

    // The live stream goes on, and the node holding it lets its publisher come back.
    let before = viewer.packets(MediaKind::Video);
    viewer
        .wait_for_packets(0, before + 50, MEDIA_TIMEOUT)
        .await?;
    let held = try_publish(a, KEPT).await?;
    assert_ne!(
        held.status().as_u16(),
        503,
        "a publisher of a stream node a holds is not refused for want of Redis"
    );
    // A viewer of a stream live here needs no directory either.
    let local = a.view(KEPT, ViewerConfig::default()).await?;
    local.wait_connected(CONNECT_TIMEOUT).await?;
    // A viewer of a stream live nowhere here does.
    let elsewhere = b
        .http()
        .post(b.whep_url(KEPT))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert_eq!(elsewhere.status().as_u16(), 503);

    cluster.redis_mut().restart();
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let other = wait_for("node b to publish again", RECOVERED_WITHIN, || async {
        match b.publish(OTHER, PublisherConfig::default()).await {
            Ok(publisher) => Ok(Some(publisher)),
            Err(error) if error.status() == Some(503) => Ok(None),
            Err(error) => Err(error),
        }
    })
    .await?;
    other.wait_connected(CONNECT_TIMEOUT).await?;
    // Node a's claim came back with its heartbeat: the stream is still a's alone.
    let claimed = wait_for("node a's claim to be back", RECOVERED_WITHIN, || async {
        let status = try_publish(b, KEPT).await?.status().as_u16();
        Ok((status == 409).then_some(()))
    })
    .await;
    assert!(claimed.is_ok(), "node b could take node a's live stream");
    let before = viewer.packets(MediaKind::Video);
    viewer
        .wait_for_packets(0, before + 50, MEDIA_TIMEOUT)
        .await?;
    let info = a.stream(KEPT).await?;
    assert_eq!(info.map(|i| i.live), Some(true));
    Ok(())
}

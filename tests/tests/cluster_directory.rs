//! The stream directory across nodes: a stream has one origin. A second publisher of the same
//! stream on another node is refused `409 stream_busy` naming the node where it is live; once
//! the first publisher leaves, on purpose (WHIP `DELETE`: at once) or by vanishing (after a
//! short grace), another node takes the stream.

use directo_tests::{CONNECT_TIMEOUT, Cluster, PublisherConfig, Result, TestServer, wait_for};
use signaling_proto::ErrorCode;
use std::time::Duration;

const STREAM: &str = "one-origin";
/// A vanished publisher's claim goes after a grace of a few seconds; generous for a loaded
/// machine.
const FREED_WITHIN: Duration = Duration::from_secs(20);

/// Publishes on `node` and expects the cluster to refuse: `409 stream_busy` naming `holder`.
async fn refused(node: &TestServer, holder: &str) -> anyhow::Result<()> {
    let error = match node.publish(STREAM, PublisherConfig::default()).await {
        Ok(_) => anyhow::bail!("a second origin of {STREAM} was accepted"),
        Err(error) => error,
    };
    assert_eq!(error.status(), Some(409), "{error}");
    assert_eq!(error.code(), Some(ErrorCode::StreamBusy), "{error}");
    assert!(
        error.to_string().contains(&format!("node {holder}")),
        "the refusal names where the stream is live: {error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_origin_is_refused_until_the_first_publisher_leaves() -> anyhow::Result<()> {
    let Some(cluster) = Cluster::start(&["a", "b"]).await? else {
        return Ok(());
    };
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let first = a.publish(STREAM, PublisherConfig::default()).await?;
    first.wait_connected(CONNECT_TIMEOUT).await?;
    refused(b, "a").await?;

    // Leaving on purpose gives the stream up at once.
    first.disconnect(a.http()).await?;
    let second = b.publish(STREAM, PublisherConfig::default()).await?;
    second.wait_connected(CONNECT_TIMEOUT).await?;
    refused(a, "b").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_publishers_stream_is_free_after_a_grace() -> anyhow::Result<()> {
    let Some(cluster) = Cluster::start(&["a", "b"]).await? else {
        return Ok(());
    };
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let first = a.publish(STREAM, PublisherConfig::default()).await?;
    first.wait_connected(CONNECT_TIMEOUT).await?;
    refused(b, "a").await?;

    // No DELETE: the publisher's peer just goes away, as a crashed browser's would.
    first.close().await?;
    let second = wait_for("node b to take the stream", FREED_WITHIN, || async {
        match b.publish(STREAM, PublisherConfig::default()).await {
            Ok(publisher) => Ok(Some(publisher)),
            Err(error) if error.code() == Some(ErrorCode::StreamBusy) => Ok(None),
            Err(error) => Err(error),
        }
    })
    .await?;
    second.wait_connected(CONNECT_TIMEOUT).await?;
    // It goes live on its first packets, and node a learns of it from the directory.
    wait_for(
        "node a to show the stream live on node b",
        FREED_WITHIN,
        || async {
            let info: Result<_> = a.stream(STREAM).await;
            Ok(info?.is_some_and(|info| info.live).then_some(()))
        },
    )
    .await?;
    Ok(())
}

//! Admin actions from any node: kicking a session held by another node, and ending a stream
//! whose publisher and viewers are on other nodes, reach the nodes that hold them.

use directo_tests::{
    CONNECT_TIMEOUT, Cluster, PublisherConfig, RTCPeerConnectionState, ViewerConfig, wait_until,
};
use reqwest::StatusCode;
use std::time::Duration;

const STREAM: &str = "administered";
/// A closed session's peer notices within a few seconds (DTLS close, else ICE timeout).
const CLOSED_WITHIN: Duration = Duration::from_secs(30);

fn is_closed(state: RTCPeerConnectionState) -> bool {
    matches!(
        state,
        RTCPeerConnectionState::Closed
            | RTCPeerConnectionState::Failed
            | RTCPeerConnectionState::Disconnected
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_and_end_stream_reach_the_node_holding_the_sessions() -> anyhow::Result<()> {
    let Some(cluster) = Cluster::start(&["a", "b"]).await? else {
        return Ok(());
    };
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let admin = cluster.token("admin", "*", None).await?;
    let publisher = a.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let kicked = b.view(STREAM, ViewerConfig::default()).await?;
    let kept = b.view(STREAM, ViewerConfig::default()).await?;
    kicked.wait_connected(CONNECT_TIMEOUT).await?;
    kept.wait_connected(CONNECT_TIMEOUT).await?;
    let session = kicked
        .session()
        .and_then(|s| s.url.path_segments()?.next_back().map(str::to_owned))
        .unwrap_or_default();

    // Asked on node a, done on node b.
    let response = a
        .http()
        .delete(a.url(&format!("api/admin/streams/{STREAM}/sessions/{session}")))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    wait_until("the kicked viewer's peer to close", CLOSED_WITHIN, || {
        is_closed(kicked.state())
    })
    .await?;
    assert_eq!(kept.state(), RTCPeerConnectionState::Connected);

    let unknown = a
        .http()
        .delete(a.url(&format!(
            "api/admin/streams/{STREAM}/sessions/no-such-session"
        )))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // Asked on node b: the publisher on a and the viewer on b go.
    let ended: serde_json::Value = b
        .http()
        .delete(b.url(&format!("api/admin/streams/{STREAM}")))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(ended["closed"], 2, "{ended}");
    wait_until("the publisher's peer to close", CLOSED_WITHIN, || {
        is_closed(publisher.state())
    })
    .await?;
    wait_until("the other viewer's peer to close", CLOSED_WITHIN, || {
        is_closed(kept.state())
    })
    .await?;
    // The stream was given up: node b may be its origin now.
    let next = b.publish(STREAM, PublisherConfig::default()).await?;
    next.wait_connected(CONNECT_TIMEOUT).await?;
    Ok(())
}

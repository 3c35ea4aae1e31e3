//! SIGTERM on a node of a cluster drains it: new viewers are redirected to another node, the
//! clients still there are told `server.move` (on their chat data channel, and on `/ws`)
//! naming the node to go to, and the node exits once empty — or at its drain deadline if
//! someone stays.

use directo_tests::{
    CHAT_TIMEOUT, CONNECT_TIMEOUT, Cluster, PublisherConfig, Result, TestServer, ViewerConfig,
    wait_for, wait_until,
};
use signaling_proto::{MoveReason, NodeNotice};
use std::time::Duration;

const STREAM: &str = "draining";
/// The drained node exits within its shutdown grace once empty; generous for a loaded machine.
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// The status of a WHEP POST to `node`, redirects not followed, and its `Location`.
async fn whep_status(node: &TestServer) -> Result<(u16, String)> {
    let response = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .post(node.whep_url(STREAM))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((response.status().as_u16(), location))
}

/// The move notices among frames that are not chat.
fn moves(frames: &[String]) -> Vec<NodeNotice> {
    frames
        .iter()
        .filter_map(|frame| serde_json::from_str(frame).ok())
        .collect()
}

/// `http://127.0.0.1:PORT`, as a node registers its URL by default.
fn node_url(node: &TestServer) -> String {
    node.base_url().as_str().trim_end_matches('/').to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_moves_its_clients_and_exits_when_empty() -> anyhow::Result<()> {
    let Some(mut cluster) = Cluster::start(&["a", "b"]).await? else {
        return Ok(());
    };
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let publisher = b.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = a.view_chat(STREAM, ViewerConfig::chat_as("Ana")).await?;
    let member = a.chat_ws(STREAM, Some("Bo"), None).await?;

    a.signal_term().await?;
    let (status, location) = wait_for("node a to redirect new viewers", EXIT_WITHIN, || async {
        let (status, location) = whep_status(a).await?;
        Ok((status == 307).then_some((status, location)))
    })
    .await?;
    assert_eq!(status, 307);
    assert!(
        location.starts_with(&format!("{}/whep/{STREAM}?", node_url(b))),
        "{location}"
    );

    let expected = NodeNotice::Move {
        url: node_url(b),
        reason: MoveReason::Draining,
    };
    let chat = viewer.chat()?;
    wait_until("the move notice on the chat channel", CHAT_TIMEOUT, || {
        moves(&chat.other()).contains(&expected)
    })
    .await?;
    wait_until("the move notice on /ws", CHAT_TIMEOUT, || {
        moves(&member.other()).contains(&expected)
    })
    .await?;

    // The client moves: it leaves node a, which is then empty and exits.
    viewer.disconnect(a.http()).await?;
    let a = cluster.node_mut("a");
    assert!(
        a.wait_exit(EXIT_WITHIN).await?,
        "node a exited with an error"
    );
    let b = cluster.node("b");
    wait_for(
        "node a to be gone from the cluster",
        EXIT_WITHIN,
        || async {
            let info: serde_json::Value = b
                .http()
                .get(b.url(&format!("api/streams/{STREAM}")))
                .send()
                .await?
                .json()
                .await?;
            Ok(info["nodes"].get("a").is_none().then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_exits_at_its_deadline_when_someone_stays() -> anyhow::Result<()> {
    let Some(mut cluster) = Cluster::start_with(&["a", "b"], |id| match id {
        "a" => vec!["--drain-timeout-s".into(), "2".into()],
        _ => Vec::new(),
    })
    .await?
    else {
        return Ok(());
    };
    let a = cluster.node("a");
    let publisher = a.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = a.view(STREAM, ViewerConfig::default()).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;

    let a = cluster.node_mut("a");
    a.signal_term().await?;
    assert!(
        a.wait_exit(EXIT_WITHIN).await?,
        "node a exited with an error"
    );
    // It left the cluster on its way out: its stream is free for another node at once.
    let b = cluster.node("b");
    let next = b.publish(STREAM, PublisherConfig::default()).await?;
    next.wait_connected(CONNECT_TIMEOUT).await?;
    drop(viewer);
    Ok(())
}

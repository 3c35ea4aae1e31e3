//! Counts across the cluster: a stream published on node a, watched on a, b and c, shows the
//! cluster's viewers on every node — `GET /api/streams/{stream}`, `GET /api/streams`, the
//! admin stats and the `directo_cluster_*` gauges of `/metrics` — with each node's share.

use directo_tests::{
    CONNECT_TIMEOUT, Cluster, PublisherConfig, Result, TestServer, ViewerConfig, wait_for,
};
use std::collections::BTreeMap;
use std::time::Duration;

const STREAM: &str = "counted";
/// Counts go through Redis once a heartbeat and the gauges every few: seconds at most.
const COUNTED_WITHIN: Duration = Duration::from_secs(30);

/// `GET /api/streams/{STREAM}` as JSON.
async fn stream_json(node: &TestServer) -> Result<serde_json::Value> {
    let response = node
        .http()
        .get(node.url(&format!("api/streams/{STREAM}")))
        .send()
        .await?;
    Ok(response.json().await?)
}

fn nodes(value: &serde_json::Value) -> BTreeMap<String, u64> {
    serde_json::from_value(value["nodes"].clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_answers_with_the_clusters_viewers() -> anyhow::Result<()> {
    let Some(cluster) = Cluster::start(&["a", "b", "c"]).await? else {
        return Ok(());
    };
    let (a, b, c) = (cluster.node("a"), cluster.node("b"), cluster.node("c"));
    let publisher = a.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    // Viewers on b and c are served there (their media comes once edges relay).
    let mut viewers = Vec::new();
    for node in [a, b, b, c] {
        let viewer = node.view(STREAM, ViewerConfig::default()).await?;
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
        viewers.push(viewer);
    }
    let expected = BTreeMap::from([
        ("a".to_owned(), 1),
        ("b".to_owned(), 2),
        ("c".to_owned(), 1),
    ]);

    for (id, node) in cluster.nodes() {
        let info = wait_for(
            &format!("node {id} to count 4 viewers"),
            COUNTED_WITHIN,
            || async {
                let info = stream_json(node).await?;
                Ok((info["viewers"] == 4 && nodes(&info) == expected).then_some(info))
            },
        )
        .await?;
        assert_eq!(info["live"], true, "node {id}: {info}");
        assert_eq!(info["origin"], "a", "node {id}: {info}");

        let list: Vec<serde_json::Value> = node
            .http()
            .get(node.url("api/streams"))
            .send()
            .await?
            .json()
            .await?;
        let listed = list.iter().find(|s| s["name"] == STREAM);
        assert_eq!(
            listed.map(|s| s["viewers"].clone()),
            Some(4.into()),
            "node {id}: {list:?}"
        );
    }

    let admin = cluster.token("admin", "*", None).await?;
    let stats: serde_json::Value = c
        .http()
        .get(c.url(&format!("api/streams/{STREAM}/stats")))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["viewers"], 4, "{stats}");
    assert_eq!(nodes(&stats), expected, "{stats}");
    assert_eq!(stats["live"], true, "{stats}");

    wait_for("the cluster gauges on node c", COUNTED_WITHIN, || async {
        let text = c.http().get(c.url("metrics")).send().await?.text().await?;
        let shows = |line: &str| text.lines().any(|l| l == line);
        Ok((shows(&format!(
            "directo_cluster_stream_viewers{{stream=\"{STREAM}\"}} 4"
        )) && shows(&format!(
            "directo_cluster_viewers{{stream=\"{STREAM}\",node=\"b\"}} 2"
        )) && shows("directo_cluster_nodes 3")
            && shows("directo_cluster_redis_reachable 1"))
        .then_some(()))
    })
    .await?;

    // A viewer leaving is seen everywhere.
    let gone = viewers.remove(1);
    gone.disconnect(b.http()).await?;
    wait_for("node c to count 3 viewers", COUNTED_WITHIN, || async {
        Ok((stream_json(c).await?["viewers"] == 3).then_some(()))
    })
    .await?;
    drop(publisher);
    Ok(())
}

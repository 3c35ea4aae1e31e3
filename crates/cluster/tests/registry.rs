//! Two nodes register, see each other with their URLs and loads, and a clean shutdown
//! removes a node at once.

use directo_cluster::testkit::{RedisServer, config, wait_for};
use directo_cluster::{Cluster, NodeLoad};

fn ids(nodes: &[directo_cluster::NodeInfo]) -> Vec<&str> {
    nodes.iter().map(|node| node.id.as_str()).collect()
}

#[tokio::test]
async fn two_nodes_see_each_other_and_their_load() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;

    let nodes = a.nodes().await?;
    assert_eq!(ids(&nodes), ["node-a", "node-b"]);
    assert_eq!(nodes[1].url, "https://node-b.test:8443");
    assert_eq!(ids(&b.nodes().await?), ["node-a", "node-b"]);

    let load = NodeLoad {
        viewers: 120,
        relays: 2,
        bitrate_bps: 90_000_000,
        cpu_percent: 37.5,
        max_viewers: 500,
        draining: false,
    };
    b.set_load(load.clone());
    let seen = wait_for("node-b's load to reach node-a", || async {
        let nodes = a.nodes().await.ok()?;
        let b = nodes.into_iter().find(|node| node.id == "node-b")?;
        (b.load.viewers == 120).then_some(b.load)
    })
    .await;
    assert_eq!(seen, load);
    assert!(seen.has_room());

    b.shutdown().await?;
    assert_eq!(
        ids(&a.nodes().await?),
        ["node-a"],
        "a clean leave is seen at once"
    );
    assert!(
        b.nodes().await.is_ok(),
        "reads still work on a handle that left"
    );
    Ok(())
}

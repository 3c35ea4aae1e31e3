//! A node that stops heartbeating (all its handles dropped, as in a crash) disappears from
//! the registry once its lease runs out, while a live node stays however long we watch.

use std::time::Duration;

use directo_cluster::Cluster;
use directo_cluster::testkit::{RedisServer, config, wait_for};

#[tokio::test]
async fn a_silent_node_expires_and_a_live_one_stays() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let lease = config(&redis, "x").timing.lease;
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;
    assert_eq!(a.nodes().await?.len(), 2);

    // No shutdown: b's entries are left to expire, as a crashed node's would.
    drop(b);
    // The registry stops listing it once its lease is past; Redis drops its key when the key's
    // own expiry comes, a moment apart: both are waited for.
    wait_for("node-b to expire", || async {
        let nodes = a.nodes().await.ok()?;
        let keys = redis.keys("directo:node:*").await;
        (nodes.len() == 1 && keys == ["directo:node:node-a"]).then_some(())
    })
    .await;

    // Three leases later, the heartbeating node is still there.
    tokio::time::sleep(lease * 3).await;
    let nodes = a.nodes().await?;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].id, "node-a");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), a.shutdown())
            .await
            .is_ok()
    );
    Ok(())
}

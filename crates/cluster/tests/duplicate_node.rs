//! A second process with a live node's id is refused; a node restarted under the id of one
//! that died takes over its record and its own claims.

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Claim, Cluster, ClusterError};

#[tokio::test]
async fn a_live_id_is_refused_and_a_dead_ones_is_taken_over() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let first = Cluster::start(config(&redis, "node-a")).await?;
    assert_eq!(first.claim_origin("launch").await?, Claim::Acquired);

    let refused = Cluster::start(config(&redis, "node-a")).await;
    assert!(
        matches!(refused, Err(ClusterError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        first.nodes().await?.len(),
        1,
        "the live node keeps its record"
    );

    // The first process dies without leaving; a new one starts under the same id at once.
    drop(first);
    let second = Cluster::start(config(&redis, "node-a")).await?;
    assert_eq!(second.nodes().await?.len(), 1);
    assert_eq!(
        second.claim_origin("launch").await?,
        Claim::Acquired,
        "the restarted node may take its own stream back"
    );
    Ok(())
}

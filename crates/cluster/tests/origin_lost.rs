//! A node whose claim ran out while it was cut off, and was taken by another node, does not
//! take it back on its next renewal: it reports `OriginLost` and stops renewing.

use std::time::Duration;

use directo_cluster::testkit::{RedisServer, config, wait_for};
use directo_cluster::{Claim, Cluster, ClusterEvent};

#[tokio::test]
async fn a_renewal_that_finds_another_holder_reports_the_loss() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;
    let mut events = a.events();
    assert_eq!(a.claim_origin("launch").await?, Claim::Acquired);

    // What a partition looks like from Redis: a's lease ran out and b claimed the stream
    // (written in one command, so no renewal of a's can slip in between).
    let mut raw = redis.connection().await;
    redis::cmd("SET")
        .arg("directo:origin:launch")
        .arg(r#"{"node":"node-b","url":"https://node-b.test:8443"}"#)
        .arg("PX")
        .arg(60_000)
        .query_async::<()>(&mut raw)
        .await?;
    assert_eq!(
        b.claim_origin("launch").await?,
        Claim::Acquired,
        "b renews it from now on"
    );

    let lost = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(ClusterEvent::OriginLost { stream, holder }) = events.recv().await {
                return (stream, holder);
            }
        }
    })
    .await?;
    assert_eq!(lost.0, "launch");
    assert_eq!(lost.1.map(|holder| holder.node).as_deref(), Some("node-b"));
    assert_eq!(a.stats().origins_lost, 1);

    // a no longer renews it: b keeps it, and b's crash frees it for a again.
    tokio::time::sleep(config(&redis, "x").timing.lease).await;
    assert_eq!(
        a.origin_of("launch").await?.map(|o| o.node).as_deref(),
        Some("node-b")
    );
    drop(b);
    wait_for("b's claim to expire", || async {
        (a.claim_origin("launch").await.ok()? == Claim::Acquired).then_some(())
    })
    .await;
    Ok(())
}

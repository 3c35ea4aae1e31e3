//! A subscription that stays quiet for many heartbeats keeps its connection (the periodic
//! ping must not take a healthy connection for a dead one) and still gets the next message.

use std::time::Duration;

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Cluster, Topic};

#[tokio::test]
async fn a_quiet_subscription_survives_the_pings() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let heartbeat = config(&redis, "x").timing.heartbeat;
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;
    let mut inbox = b.subscribe(Topic::Node("node-b".to_owned())).await?;

    tokio::time::sleep(heartbeat * 8).await;
    assert_eq!(
        a.publish(&Topic::Node("node-b".to_owned()), b"drain")
            .await?,
        1
    );
    let message = tokio::time::timeout(Duration::from_secs(20), inbox.recv()).await?;
    assert_eq!(message.map(|m| m.payload).as_deref(), Some(&b"drain"[..]));
    assert_eq!(b.stats().pubsub_connects, 1, "one connection all along");
    Ok(())
}

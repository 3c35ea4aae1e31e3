//! A Redis that hangs (connections open, no answers) makes calls answer `Unavailable` within
//! the call timeout instead of hanging, the heartbeat report it lost, and everything resume
//! by itself once it answers again.

use std::time::Duration;

use directo_cluster::testkit::{RedisServer, config, wait_for};
use directo_cluster::{Claim, Cluster, ClusterEvent, Topic};

#[tokio::test]
async fn a_hung_redis_gives_unavailable_and_recovery() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let timing = config(&redis, "x").timing;
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;
    let mut events = a.events();
    let mut inbox = b.subscribe(Topic::Node("node-b".to_owned())).await?;
    assert_eq!(a.claim_origin("launch").await?, Claim::Acquired);

    redis.pause();
    // Generous against a slow machine, yet far from "forever": the timeout is what answers.
    let bound = timing.op_timeout * 5;
    for call in [
        tokio::time::timeout(bound, a.nodes())
            .await
            .map(|r| r.map(|_| ())),
        tokio::time::timeout(bound, b.claim_origin("launch"))
            .await
            .map(|r| r.map(|_| ())),
        tokio::time::timeout(bound, a.publish(&Topic::Admin, b"x"))
            .await
            .map(|r| r.map(|_| ())),
    ] {
        let Ok(result) = call else {
            panic!("a call hung on a paused Redis");
        };
        let error = result.expect_err("Redis does not answer");
        assert!(error.is_unavailable(), "{error}");
    }
    let lost = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(ClusterEvent::RedisLost { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(lost.is_ok(), "the heartbeat reports Redis lost");

    redis.resume();
    let back = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(ClusterEvent::RedisBack) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(back.is_ok(), "the heartbeat reports Redis back");
    wait_for("calls to work again", || async {
        let nodes = a.nodes().await.ok()?;
        (nodes.len() == 2).then_some(())
    })
    .await;
    assert!(matches!(b.claim_origin("launch").await?, Claim::HeldBy(_)));
    wait_for("node-b's inbox to receive again", || async {
        let receivers = a
            .publish(&Topic::Node("node-b".to_owned()), b"back")
            .await
            .ok()?;
        (receivers == 1).then_some(())
    })
    .await;
    let message = tokio::time::timeout(Duration::from_secs(20), inbox.recv()).await?;
    assert_eq!(message.map(|m| m.payload).as_deref(), Some(&b"back"[..]));
    Ok(())
}

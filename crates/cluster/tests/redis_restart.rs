//! Redis killed and restarted empty: calls during the outage answer `Unavailable` instead of
//! hanging; afterwards nodes re-register, claims, relays and counts come back, and pub/sub
//! works again, without restarting anything.

use std::time::Duration;

use directo_cluster::testkit::{RedisServer, config, wait_for};
use directo_cluster::{Claim, Cluster, ClusterError, ClusterEvent, RelayInfo, Topic};

/// An outage call must come back on its own, well before this.
const NO_HANG: Duration = Duration::from_secs(10);

async fn bounded<T>(
    call: impl Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(NO_HANG, call).await {
        Ok(result) => result,
        Err(_) => panic!("a cluster call hung while Redis was down"),
    }
}

#[tokio::test]
async fn everything_comes_back_after_an_empty_restart() -> anyhow::Result<()> {
    let Some(mut redis) = RedisServer::start() else {
        return Ok(());
    };
    let origin = Cluster::start(config(&redis, "origin")).await?;
    let edge = Cluster::start(config(&redis, "edge")).await?;
    let mut events = origin.events();
    assert_eq!(origin.claim_origin("launch").await?, Claim::Acquired);
    edge.register_relay(
        "launch",
        RelayInfo {
            upstream: "origin".to_owned(),
            depth: 1,
        },
    )
    .await?;
    edge.set_stream_viewers("launch", 12)?;
    let mut chat = edge.subscribe(Topic::Chat("launch".to_owned())).await?;

    redis.kill();
    let down = bounded(origin.nodes()).await;
    assert!(
        matches!(down, Err(ClusterError::Unavailable { .. })),
        "{down:?}"
    );
    for call in [
        bounded(edge.claim_origin("launch")).await.map(|_| ()),
        bounded(edge.origin_of("launch")).await.map(|_| ()),
        bounded(edge.relays_of("launch")).await.map(|_| ()),
        bounded(origin.publish(&Topic::Chat("launch".to_owned()), b"lost"))
            .await
            .map(|_| ()),
        bounded(origin.subscribe(Topic::Admin)).await.map(|_| ()),
    ] {
        let error = call.expect_err("Redis is down");
        assert!(error.is_unavailable(), "{error}");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    }
    let lost = tokio::time::timeout(NO_HANG, async {
        loop {
            if let Ok(ClusterEvent::RedisLost { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(lost.is_ok(), "the heartbeat reports Redis lost");
    assert!(!origin.stats().redis_reachable);

    redis.restart();
    assert!(redis.keys("*").await.is_empty(), "Redis came back empty");
    let nodes = wait_for("both nodes to re-register", || async {
        let nodes = edge.nodes().await.ok()?;
        (nodes.len() == 2).then_some(nodes)
    })
    .await;
    assert_eq!(nodes[0].id, "edge");
    wait_for("the claim, relay and count to come back", || async {
        let origin_node = edge.origin_of("launch").await.ok()??.node;
        let relays = origin.relays_of("launch").await.ok()?;
        let viewers = origin.stream_viewers("launch").await.ok()?;
        (origin_node == "origin" && relays.len() == 1 && viewers.total == 12).then_some(())
    })
    .await;
    assert!(matches!(
        edge.claim_origin("launch").await?,
        Claim::HeldBy(_)
    ));
    assert!(origin.stats().redis_reachable);

    // The subscription taken before the outage is re-subscribed on the new connection.
    wait_for("chat to flow again", || async {
        let receivers = origin
            .publish(&Topic::Chat("launch".to_owned()), b"welcome back")
            .await
            .ok()?;
        (receivers == 1).then_some(())
    })
    .await;
    let message = tokio::time::timeout(NO_HANG, chat.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("subscription closed"))?;
    assert_eq!(&message.payload[..], b"welcome back");
    Ok(())
}

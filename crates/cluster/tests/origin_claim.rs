//! An origin claim is exclusive (one winner among racing publishers), held while its holder
//! renews it, free once the holder stops, and released explicitly only by its holder.

use directo_cluster::testkit::{RedisServer, config, wait_for};
use directo_cluster::{Claim, Cluster};

#[tokio::test]
async fn a_claim_is_exclusive_while_renewed_and_free_after_its_holder() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let lease = config(&redis, "x").timing.lease;
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;

    assert_eq!(a.claim_origin("launch").await?, Claim::Acquired);
    assert_eq!(
        a.claim_origin("launch").await?,
        Claim::Acquired,
        "claiming again is fine"
    );
    let Claim::HeldBy(holder) = b.claim_origin("launch").await? else {
        panic!("a second publisher elsewhere must see the stream held");
    };
    assert_eq!(holder.node, "node-a");
    assert_eq!(holder.url, "https://node-a.test:8443");

    // Well past the lease, the renewed claim still holds.
    tokio::time::sleep(lease * 3).await;
    assert!(matches!(b.claim_origin("launch").await?, Claim::HeldBy(_)));
    assert_eq!(
        b.origin_of("launch").await?.map(|o| o.node).as_deref(),
        Some("node-a")
    );
    let streams = b.streams().await?;
    assert_eq!(streams.len(), 1);
    assert_eq!(
        (streams[0].stream.as_str(), streams[0].origin.node.as_str()),
        ("launch", "node-a")
    );

    // The holder stops (no release, as in a crash): the claim frees within the lease.
    drop(a);
    wait_for("the claim to free", || async {
        (b.claim_origin("launch").await.ok()? == Claim::Acquired).then_some(())
    })
    .await;
    assert_eq!(
        b.origin_of("launch").await?.map(|o| o.node).as_deref(),
        Some("node-b")
    );
    Ok(())
}

#[tokio::test]
async fn only_the_holder_releases_and_then_anyone_may_claim() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;

    assert_eq!(a.claim_origin("talk").await?, Claim::Acquired);
    assert!(!b.release_origin("talk").await?, "not b's to release");
    assert_eq!(
        b.origin_of("talk").await?.map(|o| o.node).as_deref(),
        Some("node-a")
    );

    assert!(a.release_origin("talk").await?);
    assert_eq!(b.origin_of("talk").await?, None);
    assert!(b.streams().await?.is_empty());
    assert!(!a.release_origin("talk").await?, "already released");
    assert_eq!(b.claim_origin("talk").await?, Claim::Acquired);

    // a's heartbeats must not bring back what it released.
    tokio::time::sleep(config(&redis, "x").timing.lease).await;
    assert_eq!(
        a.origin_of("talk").await?.map(|o| o.node).as_deref(),
        Some("node-b")
    );

    // A clean shutdown releases the claims held.
    b.shutdown().await?;
    assert_eq!(a.origin_of("talk").await?, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_publishers_get_exactly_one_winner() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let mut nodes = Vec::new();
    for i in 0..8 {
        nodes.push(Cluster::start(config(&redis, &format!("node-{i}"))).await?);
    }
    for round in 0..5 {
        let stream = format!("race-{round}");
        let claims = futures::future::join_all(nodes.iter().map(|node| {
            let node = node.clone();
            let stream = stream.clone();
            tokio::spawn(async move { node.claim_origin(&stream).await })
        }))
        .await;
        let mut winners = Vec::new();
        let mut holders = Vec::new();
        for (i, claim) in claims.into_iter().enumerate() {
            match claim?? {
                Claim::Acquired => winners.push(format!("node-{i}")),
                Claim::HeldBy(holder) => holders.push(holder.node),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert!(
            holders.iter().all(|holder| *holder == winners[0]),
            "{holders:?}"
        );
        let origin = nodes[0].origin_of(&stream).await?.map(|o| o.node);
        assert_eq!(origin.as_ref(), Some(&winners[0]));
    }
    Ok(())
}

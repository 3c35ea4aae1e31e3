//! A forged message (junk, or signed with another secret) and a replayed genuine frame are
//! dropped and counted, never delivered; genuine messages around them still arrive.

use std::time::Duration;

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Cluster, ClusterMessage, Topic};
use futures::StreamExt;

async fn next(subscription: &mut directo_cluster::Subscription) -> ClusterMessage {
    match tokio::time::timeout(Duration::from_secs(20), subscription.recv()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("the subscription closed"),
        Err(_) => panic!("no message on {}", subscription.topic()),
    }
}

#[tokio::test]
async fn forged_and_replayed_messages_are_dropped() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let receiver = Cluster::start(config(&redis, "receiver")).await?;
    let sender = Cluster::start(config(&redis, "sender")).await?;
    let mut impostor_config = config(&redis, "impostor");
    impostor_config.secret = b"not the cluster's secret".to_vec();
    let impostor = Cluster::start(impostor_config).await?;

    let mut admin = receiver.subscribe(Topic::Admin).await?;
    // A plain Redis subscriber on the same channel, to capture a genuine frame's bytes.
    let mut tap = redis::Client::open(redis.url())?.get_async_pubsub().await?;
    tap.subscribe("directo:msg:admin").await?;
    let mut raw = redis.connection().await;

    redis::cmd("PUBLISH")
        .arg("directo:msg:admin")
        .arg("{\"drain\":true}")
        .query_async::<i64>(&mut raw)
        .await?;
    impostor.publish(&Topic::Admin, b"drain everything").await?;
    sender.publish(&Topic::Admin, b"first").await?;

    let genuine: Vec<u8> = loop {
        let frame: Vec<u8> = tap
            .on_message()
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("tap closed"))?
            .get_payload()?;
        if frame.ends_with(b"first") {
            break frame;
        }
    };
    redis::cmd("PUBLISH")
        .arg("directo:msg:admin")
        .arg(&genuine)
        .query_async::<i64>(&mut raw)
        .await?;
    sender.publish(&Topic::Admin, b"second").await?;

    let first = next(&mut admin).await;
    assert_eq!(
        (first.from.as_str(), &first.payload[..]),
        ("sender", &b"first"[..])
    );
    let second = next(&mut admin).await;
    assert_eq!(
        &second.payload[..],
        b"second",
        "the junk, the impostor's message and the replay are never delivered"
    );
    let stats = receiver.stats();
    assert_eq!(stats.messages_forged, 2);
    assert_eq!(stats.messages_replayed, 1);
    assert_eq!(stats.messages_stale, 0);
    Ok(())
}

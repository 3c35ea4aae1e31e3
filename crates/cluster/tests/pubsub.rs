//! Signed pub/sub between two nodes running in two tasks: chat from the authority to every
//! node, chat input to the authority, a message addressed to one node, and admin to all.

use std::time::Duration;

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Cluster, ClusterMessage, Topic};
use serde_json::json;

async fn next(subscription: &mut directo_cluster::Subscription) -> ClusterMessage {
    match tokio::time::timeout(Duration::from_secs(20), subscription.recv()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("the subscription closed"),
        Err(_) => panic!("no message on {}", subscription.topic()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_nodes_on_their_topics() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let origin = Cluster::start(config(&redis, "origin")).await?;
    let edge = Cluster::start(config(&redis, "edge")).await?;

    // The edge runs in its own task: it listens to the stream's chat and to its own node
    // topic, and answers a chat input to the authority for each.
    let mut chat = edge.subscribe(Topic::Chat("launch".to_owned())).await?;
    let mut inbox = edge.subscribe(Topic::Node("edge".to_owned())).await?;
    let mut admin_at_edge = edge.subscribe(Topic::Admin).await?;
    let mut chat_input = origin
        .subscribe(Topic::ChatInput("launch".to_owned()))
        .await?;
    let edge_task = tokio::spawn(async move {
        let said = next(&mut chat).await;
        let kick = next(&mut inbox).await;
        let admin = next(&mut admin_at_edge).await;
        edge.publish_json(
            &Topic::ChatInput("launch".to_owned()),
            &json!({ "text": "hello from the edge" }),
        )
        .await?;
        anyhow::Ok((said, kick, admin))
    });

    let receivers = origin
        .publish_json(
            &Topic::Chat("launch".to_owned()),
            &json!({ "text": "welcome" }),
        )
        .await?;
    assert_eq!(receivers, 1, "one node subscribes to the stream's chat");
    origin
        .publish(
            &Topic::Node("edge".to_owned()),
            b"kick session-7".as_slice(),
        )
        .await?;
    assert_eq!(
        origin
            .publish(&Topic::Node("elsewhere".to_owned()), b"x")
            .await?,
        0,
        "nobody listens on another node's topic"
    );
    origin
        .publish_json(&Topic::Admin, &json!({ "drain": true }))
        .await?;

    let (said, kick, admin) = edge_task.await??;
    assert_eq!(said.topic, Topic::Chat("launch".to_owned()));
    assert_eq!(said.from, "origin");
    assert_eq!(
        said.json::<serde_json::Value>()?,
        json!({ "text": "welcome" })
    );
    assert_eq!(&kick.payload[..], b"kick session-7");
    assert_eq!(admin.json::<serde_json::Value>()?, json!({ "drain": true }));

    let input = next(&mut chat_input).await;
    assert_eq!(input.from, "edge");
    assert_eq!(input.topic, Topic::ChatInput("launch".to_owned()));
    assert_eq!(
        input.json::<serde_json::Value>()?["text"],
        "hello from the edge"
    );

    let stats = origin.stats();
    assert_eq!(
        stats.messages_forged + stats.messages_stale + stats.messages_replayed,
        0
    );
    Ok(())
}

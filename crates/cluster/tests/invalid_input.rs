//! Invalid stream names, node ids and configs are refused with `InvalidInput` before any
//! command is built: `MONITOR` sees none of them, while it does see a valid call.

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Cluster, ClusterError, RelayInfo, Topic};

fn is_invalid_input<T: std::fmt::Debug>(result: Result<T, ClusterError>) -> bool {
    matches!(result, Err(ClusterError::InvalidInput(_)))
}

#[tokio::test]
async fn invalid_names_never_reach_redis() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let node = Cluster::start(config(&redis, "node-a")).await?;
    let monitor = redis.monitor().await;

    let long = format!("BADNAME{}", "x".repeat(60));
    let relay = |upstream: &str| RelayInfo {
        upstream: upstream.to_owned(),
        depth: 1,
    };
    assert!(is_invalid_input(node.claim_origin("BADNAME one").await));
    assert!(is_invalid_input(node.claim_origin("../BADNAME").await));
    assert!(is_invalid_input(node.claim_origin("").await));
    assert!(is_invalid_input(node.release_origin("BADNAME*").await));
    assert!(is_invalid_input(node.origin_of(&long).await));
    assert!(is_invalid_input(
        node.register_relay("BADNAME:x", relay("node-a")).await
    ));
    assert!(is_invalid_input(
        node.register_relay("relayok", relay("BADNAME node")).await
    ));
    assert!(is_invalid_input(
        node.unregister_relay("BADNAME\r\nFLUSHALL").await
    ));
    assert!(is_invalid_input(node.relays_of("BADNAME/..").await));
    assert!(is_invalid_input(node.set_stream_viewers("BADNAME über", 3)));
    assert!(is_invalid_input(node.stream_viewers("BADNAME?").await));
    assert!(is_invalid_input(
        node.publish(&Topic::Chat("BADNAME a".to_owned()), b"x")
            .await
    ));
    assert!(is_invalid_input(
        node.publish(&Topic::Node("BADNAME b".to_owned()), b"x")
            .await
    ));
    assert!(is_invalid_input(
        node.subscribe(Topic::ChatInput("BADNAME%".to_owned()))
            .await
    ));
    assert!(is_invalid_input(
        node.subscribe(Topic::Node(String::new())).await
    ));

    let mut bad_node = config(&redis, "x");
    bad_node.node_id = "BADNAME node".to_owned();
    assert!(is_invalid_input(Cluster::start(bad_node).await));
    let mut bad_namespace = config(&redis, "node-b");
    bad_namespace.namespace = "BADNAME:ns".to_owned();
    assert!(is_invalid_input(Cluster::start(bad_namespace).await));
    let mut bad_url = config(&redis, "node-c");
    bad_url.node_url = "BADNAME".to_owned();
    assert!(is_invalid_input(Cluster::start(bad_url).await));

    // A valid call is seen, so the silence above is not a deaf monitor.
    node.origin_of("GOODNAME").await?;
    let commands = monitor.commands().await;
    assert!(
        commands.iter().any(|line| line.contains("GOODNAME")),
        "{commands:#?}"
    );
    let leaked: Vec<&String> = commands
        .iter()
        .filter(|line| line.contains("BADNAME") || line.contains("relayok"))
        .collect();
    assert!(
        leaked.is_empty(),
        "invalid input reached Redis: {leaked:#?}"
    );
    Ok(())
}

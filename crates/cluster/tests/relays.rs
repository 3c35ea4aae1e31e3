//! Edges register as relays of a stream, every node sees the tree with its children counts,
//! the upstream choice fills the origin first and then the shallowest relay, and a relay
//! that stops heartbeating leaves the tree.

use directo_cluster::testkit::{RedisServer, config, wait_for};
use directo_cluster::{Claim, Cluster, RelayInfo, choose_upstream};

const MAX_RELAYS_PER_NODE: usize = 2;

/// Asks where `edge` should pull from, and registers it there, as the server will.
async fn join(edge: &Cluster, stream: &str) -> anyhow::Result<(String, u32)> {
    let origin = edge
        .origin_of(stream)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no origin"))?;
    let relays = edge.relays_of(stream).await?;
    let upstream = choose_upstream(&origin, &relays, MAX_RELAYS_PER_NODE, edge.node_id())
        .ok_or_else(|| anyhow::anyhow!("no upstream with room"))?;
    edge.register_relay(
        stream,
        RelayInfo {
            upstream: upstream.node.clone(),
            depth: upstream.depth,
        },
    )
    .await?;
    Ok((upstream.node, upstream.depth))
}

#[tokio::test]
async fn relays_form_a_tree_of_bounded_fan_out() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let origin = Cluster::start(config(&redis, "origin")).await?;
    assert_eq!(origin.claim_origin("launch").await?, Claim::Acquired);
    let mut edges = Vec::new();
    for id in ["e1", "e2", "e3", "e4", "e5"] {
        edges.push(Cluster::start(config(&redis, id)).await?);
    }

    let mut placed = Vec::new();
    for edge in &edges {
        placed.push(join(edge, "launch").await?);
    }
    let placed: Vec<(&str, u32)> = placed.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    assert_eq!(
        placed,
        [
            ("origin", 1),
            ("origin", 1),
            ("e1", 2),
            ("e2", 2),
            ("e1", 2)
        ],
        "the origin first, then the shallowest relay with the fewest children"
    );

    let relays = origin.relays_of("launch").await?;
    let tree: Vec<(&str, &str, u32, usize)> = relays
        .iter()
        .map(|r| {
            (
                r.node.as_str(),
                r.info.upstream.as_str(),
                r.info.depth,
                r.children,
            )
        })
        .collect();
    assert_eq!(
        tree,
        [
            ("e1", "origin", 1, 2),
            ("e2", "origin", 1, 1),
            ("e3", "e1", 2, 0),
            ("e4", "e2", 2, 0),
            ("e5", "e1", 2, 0),
        ]
    );
    assert_eq!(relays[0].url, "https://e1.test:8443");

    // e4 unregisters; e2 has room again.
    edges[3].unregister_relay("launch").await?;
    let relays = origin.relays_of("launch").await?;
    assert_eq!(relays.len(), 4);
    let next = choose_upstream(
        &origin.origin_of("launch").await?.expect("origin"),
        &relays,
        MAX_RELAYS_PER_NODE,
        "e6",
    )
    .expect("room");
    assert_eq!((next.node.as_str(), next.depth), ("e2", 2));

    // e5 stops heartbeating: it leaves the tree within a lease.
    let e5 = edges.pop().expect("five edges");
    drop(e5);
    wait_for("e5 to leave the tree", || async {
        let relays = origin.relays_of("launch").await.ok()?;
        (!relays.iter().any(|r| r.node == "e5")).then_some(())
    })
    .await;
    let e1 = origin.relays_of("launch").await?;
    assert_eq!(
        e1.iter().find(|r| r.node == "e1").map(|r| r.children),
        Some(1)
    );
    Ok(())
}

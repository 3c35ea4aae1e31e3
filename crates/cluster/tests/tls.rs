//! `rediss://`: a node joins a TLS-only Redis through rustls, trusting the CA it is given,
//! and the whole path works (registry, claims, signed pub/sub); without the CA it refuses.

use std::time::Duration;

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Claim, Cluster, Topic};

#[tokio::test]
async fn a_node_joins_over_tls_with_its_ca() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start_tls() else {
        return Ok(());
    };
    assert!(redis.url().starts_with("rediss://"));
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;
    assert_eq!(a.nodes().await?.len(), 2);
    assert_eq!(a.claim_origin("launch").await?, Claim::Acquired);
    assert!(matches!(b.claim_origin("launch").await?, Claim::HeldBy(_)));

    let mut admin = b.subscribe(Topic::Admin).await?;
    a.publish(&Topic::Admin, b"over tls").await?;
    let message = tokio::time::timeout(Duration::from_secs(20), admin.recv()).await?;
    assert_eq!(
        message.map(|m| m.payload).as_deref(),
        Some(&b"over tls"[..])
    );

    // The system's roots do not know the test CA: the handshake fails, reported as
    // Unavailable, not as a hang or a panic.
    let mut untrusting = config(&redis, "node-c");
    untrusting.tls_ca_pem = None;
    let refused = Cluster::start(untrusting).await;
    assert!(
        matches!(refused, Err(ref error) if error.is_unavailable()),
        "{refused:?}"
    );
    Ok(())
}

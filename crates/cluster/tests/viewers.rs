//! Per-stream viewer counts: each node reports its own, every node reads the total and the
//! split, zero removes a node's entry, and a dead node's count drops out with its lease.

use directo_cluster::testkit::{RedisServer, config, wait_for};
use directo_cluster::{Cluster, StreamViewers};

#[tokio::test]
async fn counts_add_up_across_nodes_and_expire_with_them() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        return Ok(());
    };
    let a = Cluster::start(config(&redis, "node-a")).await?;
    let b = Cluster::start(config(&redis, "node-b")).await?;

    a.set_stream_viewers("launch", 40)?;
    b.set_stream_viewers("launch", 2)?;
    b.set_stream_viewers("other", 7)?;
    let expected = StreamViewers {
        total: 42,
        per_node: vec![("node-a".to_owned(), 40), ("node-b".to_owned(), 2)],
    };
    let seen = wait_for("both counts", || async {
        let viewers = a.stream_viewers("launch").await.ok()?;
        (viewers == expected).then_some(viewers)
    })
    .await;
    assert_eq!(seen.total, 42);
    assert_eq!(b.stream_viewers("other").await?.total, 7);
    assert_eq!(
        b.stream_viewers("nobody-watches").await?,
        StreamViewers::default()
    );

    a.set_stream_viewers("launch", 0)?;
    wait_for("node-a's count to go", || async {
        let viewers = b.stream_viewers("launch").await.ok()?;
        (viewers.per_node == [("node-b".to_owned(), 2)]).then_some(())
    })
    .await;

    drop(b);
    wait_for("node-b's counts to expire", || async {
        let launch = a.stream_viewers("launch").await.ok()?;
        let other = a.stream_viewers("other").await.ok()?;
        (launch.total == 0 && other.total == 0).then_some(())
    })
    .await;
    Ok(())
}

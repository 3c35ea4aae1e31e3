//! The Redis password appears in no `Debug`, `Display` or error, even when Redis refuses it.

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Cluster, ClusterError};

const PASSWORD: &str = "s3cret-Pa55word";

#[tokio::test]
async fn a_refused_password_is_not_shown() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start_with_password(PASSWORD) else {
        return Ok(());
    };
    // The right password works.
    let node = Cluster::start(config(&redis, "node-a")).await?;
    assert_eq!(node.nodes().await?.len(), 1);
    assert!(!format!("{node:?}").contains(PASSWORD));

    let mut wrong = config(&redis, "node-b");
    let wrong_password = "wrong-Pa55word";
    wrong.url = redis.url().replace(PASSWORD, wrong_password);
    let shown = format!("{wrong:?}");
    assert!(!shown.contains(wrong_password), "{shown}");
    let error = Cluster::start(wrong)
        .await
        .expect_err("Redis refuses the password");
    assert!(
        matches!(error, ClusterError::Unavailable { .. }),
        "{error:?}"
    );
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(wrong_password), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
    }

    let mut unparseable = config(&redis, "node-c");
    unparseable.url = format!("redis://:{PASSWORD}@[::1");
    let error = Cluster::start(unparseable).await.expect_err("not a URL");
    assert!(matches!(error, ClusterError::InvalidInput(_)), "{error:?}");
    assert!(!error.to_string().contains(PASSWORD), "{error}");
    Ok(())
}

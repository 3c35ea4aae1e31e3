//! The Redis password appears in no `Debug`, `Display`, error or log line, even when Redis
//! refuses it or goes away.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use directo_cluster::testkit::{RedisServer, config};
use directo_cluster::{Cluster, ClusterError, ClusterEvent};

const PASSWORD: &str = "s3cret-Pa55word";
const WRONG_PASSWORD: &str = "wrong-Pa55word";

/// Every log line of the process, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|logs| String::from_utf8_lossy(&logs).into_owned())
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_password_is_never_shown() -> anyhow::Result<()> {
    let Some(mut redis) = RedisServer::start_with_password(PASSWORD) else {
        return Ok(());
    };
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // The right password works.
    let node = Cluster::start(config(&redis, "node-a")).await?;
    assert_eq!(node.nodes().await?.len(), 1);
    assert!(!format!("{node:?}").contains(PASSWORD));

    let mut wrong = config(&redis, "node-b");
    wrong.url = redis.url().replace(PASSWORD, WRONG_PASSWORD);
    let shown = format!("{wrong:?}");
    assert!(!shown.contains(WRONG_PASSWORD), "{shown}");
    let error = Cluster::start(wrong)
        .await
        .expect_err("Redis refuses the password");
    assert!(
        matches!(error, ClusterError::Unavailable { .. }),
        "{error:?}"
    );
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(WRONG_PASSWORD), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
    }

    let mut unparseable = config(&redis, "node-c");
    unparseable.url = format!("redis://:{PASSWORD}@[::1");
    let error = Cluster::start(unparseable).await.expect_err("not a URL");
    assert!(matches!(error, ClusterError::InvalidInput(_)), "{error:?}");
    assert!(!error.to_string().contains(PASSWORD), "{error}");

    // Redis goes away: the heartbeat logs its failure.
    let mut events = node.events();
    redis.kill();
    let lost = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(ClusterEvent::RedisLost { reason }) = events.recv().await {
                return reason;
            }
        }
    })
    .await?;
    assert!(!lost.contains(PASSWORD), "{lost}");
    let logs = logs.text();
    assert!(logs.contains("heartbeat failed"), "{logs}");
    assert!(
        !logs.contains(PASSWORD) && !logs.contains(WRONG_PASSWORD),
        "{logs}"
    );
    Ok(())
}

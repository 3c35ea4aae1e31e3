//! Starting a node of a cluster: without an explicit shared secret, with a bad node id, or
//! with the wrong Redis password it refuses to start with a clear error; the Redis password
//! never appears in what it prints; node tokens cannot be minted from the command line.

use directo_tests::{RedisServer, ServerOptions, TestServer, binary_path, node_args};
use std::process::Stdio;
use std::time::Duration;

const PASSWORD: &str = "hunter2-redis-password";

/// Runs `directo` with `args` until it exits (bounded); its status and everything it printed.
async fn run(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let data = std::env::temp_dir().join(format!("directo-cluster-config-{}", std::process::id()));
    let mut command = tokio::process::Command::new(binary_path()?);
    command
        .args(args)
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output()).await??;
    let _ = std::fs::remove_dir_all(&data);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_without_what_a_cluster_needs() -> anyhow::Result<()> {
    let url = format!("redis://:{PASSWORD}@127.0.0.1:1/0");
    let (ok, text) = run(&["serve", "--http", "127.0.0.1:0", "--cluster", &url]).await?;
    assert!(!ok && text.contains("--secret"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");

    let (ok, text) = run(&[
        "serve",
        "--http",
        "127.0.0.1:1",
        "--cluster",
        &url,
        "--secret",
        "s",
        "--node-id",
        "evil id",
    ])
    .await?;
    assert!(!ok && text.contains("--node-id"), "{text}");

    let (ok, text) = run(&["token", "--role", "node", "--stream", "s", "--secret", "s"]).await?;
    assert!(!ok && text.contains("--role node"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_never_shows() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start_with_password(PASSWORD) else {
        return Ok(());
    };
    // A wrong password: the node does not start, and does not print either password.
    let wrong = redis.url().replace(PASSWORD, "wrong-password-42");
    let (ok, text) = run(&[
        "serve",
        "--http",
        "127.0.0.1:1",
        "--media-port",
        "0",
        "--cluster",
        &wrong,
        "--secret",
        "s",
        "--node-id",
        "a",
    ])
    .await?;
    assert!(!ok, "started with a wrong Redis password: {text}");
    assert!(!text.contains("wrong-password-42"), "{text}");

    // The right one, with debug logs: a working node that never prints it.
    let node = TestServer::start_with(ServerOptions {
        extra_args: node_args(&redis.url(), "a"),
        env: vec![("RUST_LOG".into(), "debug".into())],
        ..ServerOptions::default()
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = node.log();
    assert!(log.contains("this node is in the cluster"), "{log}");
    assert!(!log.contains(PASSWORD), "the Redis password is in the log");
    Ok(())
}

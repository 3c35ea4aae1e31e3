//! `Cluster`: a throw-away Redis (directo-cluster's testkit: a `redis-server` on a free
//! loopback port, empty, killed on drop) and several `directo serve --cluster` processes
//! ([`TestServer`]s) sharing it and one secret.
//!
//! Without `redis-server` installed, [`Cluster::start`] prints a skip notice and returns
//! `None`; cluster tests return early on that.

use crate::error::{ClientError, Result};
use crate::server::{ServerOptions, TestServer, binary_path};
use directo_cluster::testkit::RedisServer;
use std::process::Stdio;

/// The `--secret` every node of a test cluster shares.
pub const CLUSTER_SECRET: &str = "cluster test secret";

/// Redis and the nodes, by id.
pub struct Cluster {
    nodes: Vec<(String, TestServer)>,
    redis: RedisServer,
}

impl Cluster {
    /// Starts Redis and one node per id, each with `--cluster`, `--node-id` and the shared
    /// `--secret`; `None` when `redis-server` is not installed.
    pub async fn start(ids: &[&str]) -> Result<Option<Cluster>> {
        Cluster::start_with(ids, |_| Vec::new()).await
    }

    /// Like [`Cluster::start`], with more arguments for each node (`extra(id)`).
    pub async fn start_with(
        ids: &[&str],
        extra: impl Fn(&str) -> Vec<String>,
    ) -> Result<Option<Cluster>> {
        let Some(redis) = RedisServer::start() else {
            return Ok(None);
        };
        let mut cluster = Cluster {
            nodes: Vec::new(),
            redis,
        };
        for id in ids {
            cluster.add(id, extra(id)).await?;
        }
        Ok(Some(cluster))
    }

    /// Starts one more node with `extra` arguments.
    pub async fn add(&mut self, id: &str, extra: Vec<String>) -> Result<&TestServer> {
        let mut extra_args = node_args(&self.redis.url(), id);
        extra_args.extend(extra);
        let server = TestServer::start_with(ServerOptions {
            extra_args,
            ..ServerOptions::default()
        })
        .await?;
        self.nodes.push((id.to_owned(), server));
        Ok(&self.nodes[self.nodes.len() - 1].1)
    }

    /// The node `id`.
    pub fn node(&self, id: &str) -> &TestServer {
        match self.nodes.iter().find(|(node, _)| node == id) {
            Some((_, server)) => server,
            None => panic!("no node {id} in this cluster"),
        }
    }

    /// The node `id`, to kill, restart or terminate it.
    pub fn node_mut(&mut self, id: &str) -> &mut TestServer {
        match self.nodes.iter_mut().find(|(node, _)| node == id) {
            Some((_, server)) => server,
            None => panic!("no node {id} in this cluster"),
        }
    }

    /// Every node, with its id.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &TestServer)> {
        self.nodes.iter().map(|(id, server)| (id.as_str(), server))
    }

    /// The cluster's Redis.
    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    /// The cluster's Redis, to kill or restart it.
    pub fn redis_mut(&mut self) -> &mut RedisServer {
        &mut self.redis
    }

    /// A token signed with the cluster's secret (`directo token --secret …`).
    pub async fn token(&self, role: &str, stream: &str, name: Option<&str>) -> Result<String> {
        let mut command = tokio::process::Command::new(binary_path()?);
        command
            .arg("token")
            .args([
                "--role",
                role,
                "--stream",
                stream,
                "--secret",
                CLUSTER_SECRET,
            ])
            .stdin(Stdio::null());
        if let Some(name) = name {
            command.args(["--name", name]);
        }
        let output = command
            .output()
            .await
            .map_err(|e| ClientError::Server(format!("cannot run `directo token`: {e}")))?;
        let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !output.status.success() || token.is_empty() {
            return Err(ClientError::Server(format!(
                "`directo token` exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(token)
    }
}

/// The arguments that make a server node `id` of the cluster on `redis_url`.
pub fn node_args(redis_url: &str, id: &str) -> Vec<String> {
    [
        "--cluster",
        redis_url,
        "--node-id",
        id,
        "--secret",
        CLUSTER_SECRET,
    ]
    .map(str::to_owned)
    .to_vec()
}

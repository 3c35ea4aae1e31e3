//! What a node needs to join a cluster, and the checks it must pass before anything reaches
//! Redis. `Debug` hides the Redis password and the shared secret.

use std::time::Duration;

use crate::error::{ClusterError, Result};
use crate::names::{NodeId, is_valid_namespace};
use crate::redact::redact_url;

/// The namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "directo";

/// The longest node URL accepted (it is stored in every record this node writes).
const MAX_NODE_URL_BYTES: usize = 512;

/// How to reach Redis and who this node is.
#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://[:password@]host:6379[/db]` or `rediss://…` (TLS, rustls).
    pub url: String,
    /// This node's id, `[A-Za-z0-9._:-]{1,64}`, unique in the cluster.
    pub node_id: String,
    /// Where other nodes and redirected viewers reach this node, `http(s)://…`.
    pub node_url: String,
    /// The shared secret that signs every cross-node message (the server's token secret).
    pub secret: Vec<u8>,
    /// Prefixes every key and channel, so several clusters can share one Redis.
    pub namespace: String,
    /// For `rediss://` with a private CA: the CA certificate(s) in PEM, trusted instead of
    /// the system's roots. `None` trusts the system's roots.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Heartbeat, lease and timeout lengths.
    pub timing: Timing,
}

impl ClusterConfig {
    /// A configuration in the default namespace with the default timing.
    pub fn new(
        url: impl Into<String>,
        node_id: impl Into<String>,
        node_url: impl Into<String>,
        secret: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            url: url.into(),
            node_id: node_id.into(),
            node_url: node_url.into(),
            secret: secret.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            tls_ca_pem: None,
            timing: Timing::default(),
        }
    }

    /// Checks every field; the error says which one and what would be accepted.
    pub fn validate(&self) -> Result<()> {
        check_redis_url(&self.url)?;
        if self.tls_ca_pem.is_some() && !self.url.starts_with("rediss:") {
            return Err(ClusterError::InvalidInput(format!(
                "a TLS CA is set but the Redis URL {} is not rediss://",
                redact_url(&self.url)
            )));
        }
        NodeId::check(&self.node_id)?;
        check_node_url(&self.node_url)?;
        if self.secret.is_empty() {
            return Err(ClusterError::InvalidInput(
                "the shared secret is empty: give every node the same secret".to_owned(),
            ));
        }
        if !is_valid_namespace(&self.namespace) {
            return Err(ClusterError::InvalidInput(format!(
                "namespace {:?} is not valid: use 1 to 32 of A-Z a-z 0-9 . _ -",
                self.namespace
            )));
        }
        self.timing.validate()
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("url", &redact_url(&self.url))
            .field("node_id", &self.node_id)
            .field("node_url", &self.node_url)
            .field("secret", &"<hidden>")
            .field("namespace", &self.namespace)
            .field(
                "tls_ca_pem",
                &self
                    .tls_ca_pem
                    .as_ref()
                    .map(|pem| format!("<{} bytes>", pem.len())),
            )
            .field("timing", &self.timing)
            .finish()
    }
}

/// How often entries are refreshed, how long they live unrefreshed, and how long a call may
/// wait for Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often the node record and everything this node holds are refreshed (1 s).
    pub heartbeat: Duration,
    /// How long an entry outlives its last refresh (3 s): a dead node's entries are gone
    /// within this, and a live node may miss `lease / heartbeat - 1` refreshes in a row.
    pub lease: Duration,
    /// The longest one call waits for Redis before answering `Unavailable` (1 s).
    pub op_timeout: Duration,
    /// Messages signed longer ago than this (or this far in the future) are dropped as stale
    /// (30 s; node clocks must agree within it).
    pub max_message_age: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            lease: Duration::from_secs(3),
            op_timeout: Duration::from_secs(1),
            max_message_age: Duration::from_secs(30),
        }
    }
}

impl Timing {
    /// The lease in whole milliseconds, as Redis takes it (`PX`).
    pub(crate) fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    fn validate(&self) -> Result<()> {
        let invalid = |message: &str| Err(ClusterError::InvalidInput(message.to_owned()));
        if self.heartbeat < Duration::from_millis(10) {
            return invalid("the heartbeat must be at least 10 ms");
        }
        // Two heartbeats per lease at least, or one late refresh drops a live node.
        if self.lease < self.heartbeat * 2 {
            return invalid("the lease must be at least two heartbeats long");
        }
        if self.op_timeout.is_zero() || self.op_timeout > self.lease {
            return invalid("the Redis call timeout must be above zero and at most one lease");
        }
        if self.max_message_age < Duration::from_secs(1) {
            return invalid("the maximum message age must be at least one second");
        }
        Ok(())
    }
}

/// The URL must be `redis://` or `rediss://` with a host; the error shows it redacted.
fn check_redis_url(url: &str) -> Result<()> {
    let accepted = "use redis://[:password@]host:6379[/db] or rediss://…";
    let parsed = url::Url::parse(url).map_err(|_| {
        ClusterError::InvalidInput(format!(
            "the Redis URL {} does not parse: {accepted}",
            redact_url(url)
        ))
    })?;
    if !matches!(parsed.scheme(), "redis" | "rediss") || parsed.host_str().is_none() {
        return Err(ClusterError::InvalidInput(format!(
            "the Redis URL {} is not a redis:// or rediss:// URL with a host: {accepted}",
            redact_url(url)
        )));
    }
    Ok(())
}

/// The node URL must be an absolute `http(s)` URL: it is where viewers get redirected.
fn check_node_url(node_url: &str) -> Result<()> {
    let ok = node_url.len() <= MAX_NODE_URL_BYTES
        && url::Url::parse(node_url).is_ok_and(|parsed| {
            matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some()
        });
    if ok {
        Ok(())
    } else {
        Err(ClusterError::InvalidInput(format!(
            "the node URL {:?} is not valid: give this node's public http(s)://host[:port] \
             (at most {MAX_NODE_URL_BYTES} bytes)",
            node_url.chars().take(80).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        ClusterConfig::new(
            "redis://:hunter2@127.0.0.1:6379/0",
            "node-a",
            "https://a.example:8443",
            b"shared secret".to_vec(),
        )
    }

    #[test]
    fn a_good_config_passes() {
        assert_eq!(config().validate(), Ok(()));
        assert_eq!(config().namespace, "directo");
    }

    #[test]
    fn debug_hides_the_password_and_the_secret() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("shared secret"), "{shown}");
        assert!(shown.contains("127.0.0.1:6379"), "{shown}");
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut bad = config();
        bad.url = "http://:hunter2@127.0.0.1".to_owned();
        let message = bad.validate().expect_err("http is not Redis").to_string();
        assert!(
            message.contains("redis://") && !message.contains("hunter2"),
            "{message}"
        );

        let mut bad = config();
        bad.node_id = "node a".to_owned();
        assert!(
            bad.validate()
                .expect_err("space")
                .to_string()
                .contains("node id")
        );

        let mut bad = config();
        bad.node_url = "a.example:8443".to_owned();
        assert!(
            bad.validate()
                .expect_err("no scheme")
                .to_string()
                .contains("node URL")
        );

        let mut bad = config();
        bad.secret.clear();
        assert!(
            bad.validate()
                .expect_err("empty")
                .to_string()
                .contains("secret")
        );

        let mut bad = config();
        bad.namespace = "a:b".to_owned();
        assert!(
            bad.validate()
                .expect_err("colon")
                .to_string()
                .contains("namespace")
        );

        let mut bad = config();
        bad.tls_ca_pem = Some(b"-----BEGIN CERTIFICATE-----".to_vec());
        assert!(
            bad.validate()
                .expect_err("no TLS")
                .to_string()
                .contains("rediss://")
        );

        let mut bad = config();
        bad.timing.lease = bad.timing.heartbeat;
        assert!(
            bad.validate()
                .expect_err("short lease")
                .to_string()
                .contains("lease")
        );
    }
}

//! The connection to Redis: every call bounded in time, retried once after a dropped
//! connection, scripts reloaded after a Redis restart, errors mapped and redacted.
//!
//! Commands share one multiplexed [`ConnectionManager`] (it reconnects by itself); pub/sub
//! gets its own connection per [`Backend::pubsub`], owned by [`crate::bus`]. Nothing here
//! knows what the keys mean.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::{ErrorKind, FromRedisValue, Pipeline, RedisError, ServerErrorKind};

use crate::error::{ClusterError, Result};
use crate::redact::{Redactor, redact_url};
use crate::scripts;

/// A handle on Redis for commands; cheap to clone.
#[derive(Clone)]
pub(crate) struct Backend {
    client: redis::Client,
    commands: ConnectionManager,
    timeout: Duration,
    redactor: Redactor,
}

impl Backend {
    /// A backend for `url` (already validated), trusting `tls_ca_pem` instead of the
    /// system's roots if given. Connects lazily: no I/O happens here.
    pub(crate) fn new(url: &str, tls_ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self> {
        let redactor = Redactor::for_url(url);
        if url.starts_with("rediss:") {
            // rustls needs a process-wide crypto provider; it picks one by itself only when
            // exactly one is compiled in. Installing ring (ours) is a no-op if the
            // application already chose one.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let invalid = |error: RedisError| {
            ClusterError::InvalidInput(format!(
                "the Redis URL {} is not usable: {}",
                redact_url(url),
                redactor.scrub(&error.to_string())
            ))
        };
        let client = match tls_ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
            None => redis::Client::open(url),
        }
        .map_err(invalid)?;
        // One connection attempt per reconnect, no backoff: the heartbeat is the retry
        // policy (every beat), and a backoff here only delays the answer to a caller who
        // is better served by a quick `Unavailable` (150 ms with one retry, 1 ms without,
        // when Redis refuses connections).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(0);
        let commands =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(invalid)?;
        Ok(Self {
            client,
            commands,
            timeout,
            redactor,
        })
    }

    /// Runs `pipe` and decodes its replies as `T`, within the call timeout.
    pub(crate) async fn query<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        let attempt = async {
            let mut connection = self.commands.clone();
            let mut scripts_loaded = false;
            let mut retried = false;
            loop {
                match pipe.query_async::<T>(&mut connection).await {
                    Ok(value) => return Ok(value),
                    Err(error)
                        if !scripts_loaded
                            && error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                    {
                        // Redis restarted (or flushed its script cache): every script is gone.
                        load_scripts(&mut connection).await?;
                        scripts_loaded = true;
                    }
                    // The manager has started reconnecting; one retry rides on that
                    // connection. Every write we make is idempotent, and a repeated PUBLISH
                    // is dropped by the receivers' replay guard.
                    Err(error)
                        if !retried && (error.is_io_error() || error.is_connection_dropped()) =>
                    {
                        retried = true;
                    }
                    Err(error) => return Err(error),
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.error(&error)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// A new connection for pub/sub, within the call timeout.
    pub(crate) async fn pubsub(&self) -> Result<PubSub> {
        match tokio::time::timeout(self.timeout, self.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(error)) => Err(self.error(&error)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// The call timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `error` as a [`ClusterError`], password scrubbed.
    pub(crate) fn error(&self, error: &RedisError) -> ClusterError {
        let reason = self.redactor.scrub(&error.to_string());
        if is_unavailable(error) {
            ClusterError::Unavailable { reason }
        } else {
            ClusterError::Redis { reason }
        }
    }

    /// The error for a call that ran out of time.
    pub(crate) fn timed_out(&self) -> ClusterError {
        ClusterError::Unavailable {
            reason: format!("no answer within {} ms", self.timeout.as_millis()),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Loads every script, for a Redis that answered `NOSCRIPT`.
async fn load_scripts(connection: &mut ConnectionManager) -> redis::RedisResult<()> {
    for script in scripts::all() {
        script.load_async(connection).await?;
    }
    Ok(())
}

/// Whether `error` means "Redis is not there for us right now" rather than a wrong request.
fn is_unavailable(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::NoPerm
                )
        )
        // Credentials refused: the server can do nothing but report it and retry later.
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

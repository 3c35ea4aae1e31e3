//! The stream directory's vocabulary: who holds a stream's publisher (its origin), and the
//! outcome of claiming it. The claim value stored at `{ns}:origin:{stream}` is an
//! [`OriginHolder`] in JSON; the Lua scripts read its `node` field.

use serde::{Deserialize, Serialize};

use crate::error::{ClusterError, Result};

/// The node that holds a stream's publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginHolder {
    /// Its node id.
    pub node: String,
    /// Its URL, for WHEP pulls and redirects.
    pub url: String,
}

impl OriginHolder {
    /// The JSON stored in Redis. Field order is fixed, so a node writes the same bytes on
    /// every renewal.
    pub(crate) fn to_json(&self) -> String {
        // Serializing two strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The holder stored at `key`.
    pub(crate) fn from_json(key: &str, json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|error| ClusterError::Corrupt {
            key: key.to_owned(),
            reason: error.to_string(),
        })
    }
}

/// The outcome of [`crate::Cluster::claim_origin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node is the stream's origin now (or already was); it renews the claim until
    /// released.
    Acquired,
    /// Another node holds the stream; the publisher belongs there.
    HeldBy(OriginHolder),
}

/// One live stream of the cluster, as [`crate::Cluster::streams`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOrigin {
    /// The stream's name.
    pub stream: String,
    /// The node holding its publisher.
    pub origin: OriginHolder,
}

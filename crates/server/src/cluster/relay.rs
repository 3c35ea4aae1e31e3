//! Where the media relay plugs into the server: the two calls a relay needs and nothing
//! else, so the relay itself (a WHEP client inside the media engine) changes these two
//! places only.
//!
//! - [`ClusterNode::ensure_relay`]: a viewer is served on this node but the stream's
//!   publisher is on another node (its origin). Today it only logs; the relay will pull the
//!   stream from `directo_cluster::choose_upstream(origin, relays_of(stream),
//!   max_relays_per_node, me)` over WHEP with a node token (`Tokens::mint_node`), register
//!   itself (`register_relay`) and feed the local fan-out as the stream's source. It is
//!   called for each such viewer and again every heartbeat while local viewers wait for a
//!   stream live elsewhere (the reconcile loop), so it must be idempotent.
//! - [`accept_relay_pull`]: another node's WHEP POST with a node token. Today it is a plain
//!   viewer; the relay will make it the relay subscriber (every simulcast layer).

use directo_cluster::OriginHolder;
use directo_media::{EngineHandle, Identity, MediaError, Quality, SessionAnswer};

use super::{ClusterNode, api_error};
use crate::error::ApiError;

impl ClusterNode {
    /// Makes sure `stream`, whose origin is `origin` (another node), reaches this node's
    /// fan-out. Idempotent.
    pub async fn ensure_relay(
        &self,
        stream: &str,
        origin: &OriginHolder,
    ) -> Result<(), directo_cluster::ClusterError> {
        tracing::debug!(
            %stream,
            origin = %origin.node,
            max_relays_per_node = self.inner.max_relays,
            "a viewer here watches a stream published on another node; no relay pulls it yet"
        );
        Ok(())
    }

    /// Before a viewer of `stream` is created here: if the stream is neither live here nor
    /// published here, asks the directory where it is and has it relayed. A stream live
    /// nowhere is fine (the viewer waits, as on a single node); a directory that cannot be
    /// reached is `503 cluster_unavailable`.
    pub async fn prepare_viewer(&self, stream: &str) -> Result<(), ApiError> {
        let live_here = self.engine().stream(stream).is_some_and(|info| info.live);
        if live_here || self.directory().is_origin(stream) {
            return Ok(());
        }
        match self.cluster().origin_of(stream).await {
            Ok(Some(origin)) if origin.node != self.node_id() => {
                self.ensure_relay(stream, &origin).await.map_err(api_error)
            }
            Ok(_) => Ok(()),
            Err(error) => Err(api_error(error)),
        }
    }
}

/// Answers another node's pull of `stream` (a WHEP POST carrying a node token; `relay_for`
/// is the pulling node's id).
pub async fn accept_relay_pull(
    engine: &EngineHandle,
    stream: &str,
    offer: String,
    identity: Identity,
    relay_for: &str,
) -> Result<SessionAnswer, MediaError> {
    tracing::info!(%stream, node = %relay_for, "another node pulls the stream");
    engine
        .watch_with_quality(stream, offer, identity, Quality::Auto)
        .await
}

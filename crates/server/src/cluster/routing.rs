//! Where a viewer is served: here while this node has room, else a `307 Temporary Redirect`
//! (RFC 9725 allows it) to the least-loaded other node, preferring one that already has the
//! stream (its origin or a relay of it).
//!
//! Browsers drop `Authorization` when `fetch` follows a redirect to another origin (WHATWG
//! fetch #1544), so the `Location` carries what the viewer was granted as a short-lived
//! viewer (or moderator) token in `?token=`, which WHEP accepts in place of the header. The
//! viewer's `name` and `quality` ride along, and `hop` counts redirects: after
//! [`MAX_HOPS`] a node serves the viewer even when over its limit (loads are a heartbeat
//! old, so two full nodes could otherwise send a viewer back and forth).

use std::collections::BTreeSet;
use std::time::Duration;

use directo_cluster::NodeInfo;
use signaling_proto::ErrorCode;

use super::ClusterNode;
use super::load::local_viewers;
use crate::error::ApiError;
use crate::token::TokenRole;

/// Redirects a viewer may go through before a node serves it regardless of its limit.
pub const MAX_HOPS: u32 = 3;
/// How long the token in a redirect's URL is valid: long enough to follow the redirect.
pub const REDIRECT_TOKEN_TTL: Duration = Duration::from_secs(60);

/// What a viewer's WHEP request carries that a redirect must pass on.
#[derive(Debug, Clone, Default)]
pub struct ViewerRequest<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The display name from `?name=`.
    pub name: Option<&'a str>,
    /// The quality from `?quality=`.
    pub quality: Option<&'a str>,
    /// The name the viewer's token carried.
    pub token_name: Option<String>,
    /// Whether the viewer may moderate.
    pub moderator: bool,
    /// Redirects it went through so far (`?hop=`).
    pub hop: u32,
}

/// Serve here, or send the viewer elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Serve the viewer on this node.
    Here,
    /// Answer `307` with this `Location`.
    Redirect(String),
}

impl ClusterNode {
    /// Whether this node takes one more viewer: not draining, and below its limit if set.
    pub fn has_room(&self) -> bool {
        !self.is_draining()
            && self
                .inner
                .max_viewers
                .is_none_or(|max| local_viewers(&self.engine().streams()) < max)
    }

    /// Where `request`'s viewer is served. Needs the cluster only when this node has no
    /// room; then no reachable cluster is `503 cluster_unavailable`, and no node with room
    /// is `503 unavailable`.
    pub async fn route_viewer(&self, request: &ViewerRequest<'_>) -> Result<Route, ApiError> {
        if self.has_room() || (request.hop >= MAX_HOPS && !self.is_draining()) {
            return Ok(Route::Here);
        }
        let Some(target) = self.move_target(request.stream).await? else {
            let why = if self.is_draining() {
                "this node is leaving the cluster and no other node has room"
            } else {
                "every node of the cluster is full"
            };
            return Err(ApiError::new(ErrorCode::Unavailable, why).retry_after(5));
        };
        let role = if request.moderator {
            TokenRole::Moderator
        } else {
            TokenRole::Viewer
        };
        let (token, _) = self
            .inner
            .tokens
            .mint(
                request.stream,
                role,
                request.token_name.clone(),
                REDIRECT_TOKEN_TTL,
            )
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        redirect_location(&target, request, &token).map(Route::Redirect)
    }

    /// The base URL of the node a viewer of `stream` should go to instead of this one:
    /// the least-loaded other live node with room, one that has the stream first. `None`
    /// when no node has room.
    pub async fn move_target(&self, stream: &str) -> Result<Option<String>, ApiError> {
        let cluster = self.cluster();
        let nodes = cluster.nodes().await.map_err(super::api_error)?;
        // The stream's holders are a preference only: without them any node will do.
        let mut holders: BTreeSet<String> = cluster
            .relays_of(stream)
            .await
            .map(|relays| relays.into_iter().map(|relay| relay.node).collect())
            .unwrap_or_default();
        if let Ok(Some(origin)) = cluster.origin_of(stream).await {
            holders.insert(origin.node);
        }
        Ok(pick_target(&nodes, &holders, self.node_id()).map(|node| node.url.clone()))
    }
}

/// The least-loaded node other than `me` with room, among `holders` of the stream if any
/// has room, else among all. Load is the share of its limit in use (0 without a limit),
/// then its viewers, then its CPU; ties go to the smaller id, so every node agrees.
pub fn pick_target<'a>(
    nodes: &'a [NodeInfo],
    holders: &BTreeSet<String>,
    me: &str,
) -> Option<&'a NodeInfo> {
    let candidates = || {
        nodes
            .iter()
            .filter(move |node| node.id != me && node.load.has_room())
    };
    let least_loaded = |nodes: Vec<&'a NodeInfo>| {
        nodes.into_iter().min_by(|a, b| {
            let key = |node: &NodeInfo| {
                let share = if node.load.max_viewers == 0 {
                    0.0
                } else {
                    node.load.viewers as f64 / node.load.max_viewers as f64
                };
                (share, node.load.viewers, node.load.cpu_percent)
            };
            let (a_key, b_key) = (key(a), key(b));
            a_key
                .partial_cmp(&b_key)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.id.cmp(&b.id))
        })
    };
    let with_stream: Vec<&NodeInfo> = candidates()
        .filter(|node| holders.contains(&node.id))
        .collect();
    least_loaded(with_stream).or_else(|| least_loaded(candidates().collect()))
}

/// `{base}/whep/{stream}?name=…&quality=…&token=…&hop=…`.
pub fn redirect_location(
    base: &str,
    request: &ViewerRequest<'_>,
    token: &str,
) -> Result<String, ApiError> {
    // A node URL may carry a path (behind a proxy): keep it, as a directory.
    let mut url = url::Url::parse(&format!("{}/", base.trim_end_matches('/')))
        .and_then(|base| base.join(&format!("whep/{}", request.stream)))
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Internal,
                format!("node URL {base:?} does not make a WHEP URL: {e}"),
            )
        })?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(name) = request.name {
            query.append_pair("name", name);
        }
        if let Some(quality) = request.quality {
            query.append_pair("quality", quality);
        }
        query.append_pair("token", token);
        query.append_pair("hop", &(request.hop + 1).to_string());
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use directo_cluster::NodeLoad;

    fn node(id: &str, viewers: u64, max_viewers: u64, draining: bool) -> NodeInfo {
        NodeInfo {
            id: id.to_owned(),
            url: format!("http://{id}.test:8080"),
            load: NodeLoad {
                viewers,
                max_viewers,
                draining,
                ..NodeLoad::default()
            },
            started_at_ms: 0,
        }
    }

    fn picked(nodes: &[NodeInfo], holders: &[&str], me: &str) -> Option<String> {
        let holders = holders.iter().map(|h| (*h).to_owned()).collect();
        pick_target(nodes, &holders, me).map(|n| n.id.clone())
    }

    #[test]
    fn least_loaded_other_node_with_room() {
        let nodes = [
            node("a", 0, 10, false),
            node("b", 8, 10, false),
            node("c", 3, 10, false),
            node("d", 0, 10, true),
            node("e", 10, 10, false),
        ];
        assert_eq!(picked(&nodes, &[], "a"), Some("c".into()));
        assert_eq!(picked(&nodes[..1], &[], "a"), None);
    }

    #[test]
    fn a_node_with_the_stream_first_when_it_has_room() {
        let nodes = [
            node("a", 10, 10, false),
            node("b", 8, 10, false),
            node("c", 3, 10, false),
        ];
        assert_eq!(picked(&nodes, &["b"], "a"), Some("b".into()));
        assert_eq!(picked(&nodes, &["a"], "a"), Some("c".into()));
        let full_holder = [node("b", 10, 10, false), node("c", 3, 10, false)];
        assert_eq!(picked(&full_holder, &["b"], "a"), Some("c".into()));
    }

    #[test]
    fn the_location_carries_name_quality_token_and_hop() {
        let request = ViewerRequest {
            stream: "launch",
            name: Some("Ana María"),
            quality: Some("low"),
            hop: 1,
            ..ViewerRequest::default()
        };
        let location = redirect_location("http://b.test:8080/", &request, "t.o.k").unwrap();
        assert_eq!(
            location,
            "http://b.test:8080/whep/launch?name=Ana+Mar%C3%ADa&quality=low&token=t.o.k&hop=2"
        );
        let bare = ViewerRequest {
            stream: "launch",
            ..ViewerRequest::default()
        };
        assert_eq!(
            redirect_location("http://b.test:8080", &bare, "t").unwrap(),
            "http://b.test:8080/whep/launch?token=t&hop=1"
        );
        assert_eq!(
            redirect_location("https://proxy.test/directo-b", &bare, "t").unwrap(),
            "https://proxy.test/directo-b/whep/launch?token=t&hop=1"
        );
    }
}

//! A stream's figures across the cluster, for `GET /api/streams[/{stream}]`, the admin
//! stats and the `directo_cluster_*` gauges of `/metrics`.
//!
//! Every node writes its own viewer count of each stream to Redis every heartbeat (the
//! reconcile loop); any node sums them. This node's own figure is taken from its engine
//! rather than from Redis, so it is never a heartbeat behind. A stream whose publisher is
//! on another node and that is not relayed here has no tracks or bitrate on this node: it
//! shows as live with the cluster's viewers. Without Redis a node answers with its own
//! figures, marked `partial`.
//!
//! Every page polls a stream's status (the SDK every 2 s per viewer), so what Redis says of
//! a stream is kept for [`REMOTE_TTL`] ([`RemoteCache`]): Redis changes no faster than one
//! heartbeat, and a node then asks it at most once a second per stream however large its
//! audience.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use signaling_proto::{ClusterStreamInfo, StreamInfo};

use super::ClusterNode;

/// Metric label sets a node set last time, so the ones that are gone are set to 0.
pub type Reported = BTreeSet<(String, String)>;

/// What Redis says of a stream: its origin's node id, and each node's viewers.
type Remote = (Option<String>, Vec<(String, u64)>);

/// How long what Redis said of a stream is reused: one heartbeat.
pub const REMOTE_TTL: Duration = Duration::from_secs(1);
/// Cached streams above which stale entries are pruned.
const CACHE_PRUNE_AT: usize = 1024;

/// What Redis said of each stream lately, shared by the API handlers of this node.
#[derive(Debug, Default)]
pub struct RemoteCache {
    entries: Mutex<HashMap<String, (Instant, Remote)>>,
}

impl RemoteCache {
    fn get(&self, stream: &str, now: Instant) -> Option<Remote> {
        let entries = self.entries.lock().ok()?;
        let (at, remote) = entries.get(stream)?;
        (now.duration_since(*at) < REMOTE_TTL).then(|| remote.clone())
    }

    fn put(&self, stream: &str, remote: Remote, now: Instant) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_PRUNE_AT {
                entries.retain(|_, (at, _)| now.duration_since(*at) < REMOTE_TTL);
            }
            entries.insert(stream.to_owned(), (now, remote));
        }
    }
}

impl ClusterNode {
    /// `stream` across the cluster, or `None` when no node has a publisher or viewers of it.
    pub async fn stream_view(&self, stream: &str) -> Option<ClusterStreamInfo> {
        let local = self.engine().stream(stream);
        let cache = &self.inner.remote_cache;
        let now = Instant::now();
        let remote = match cache.get(stream, now) {
            Some(remote) => Some(remote),
            None => {
                let cluster = self.cluster();
                let (origin, viewers) =
                    tokio::join!(cluster.origin_of(stream), cluster.stream_viewers(stream));
                match (origin, viewers) {
                    (Ok(origin), Ok(viewers)) => {
                        let remote = (origin.map(|o| o.node), viewers.per_node);
                        cache.put(stream, remote.clone(), now);
                        Some(remote)
                    }
                    _ => None,
                }
            }
        };
        self.merge(stream, local, remote)
    }

    /// Every stream with a publisher or viewers anywhere in the cluster, by name.
    pub async fn streams_view(&self) -> Vec<ClusterStreamInfo> {
        let cluster = self.cluster();
        let locals = self.engine().streams();
        let origins = match cluster.streams().await {
            Ok(origins) => origins,
            Err(_) => {
                return locals
                    .iter()
                    .filter_map(|info| self.merge(&info.name, Some(info.clone()), None))
                    .collect();
            }
        };
        let mut names: BTreeMap<String, Option<String>> = origins
            .into_iter()
            .map(|entry| (entry.stream, Some(entry.origin.node)))
            .collect();
        for info in locals.iter() {
            names.entry(info.name.clone()).or_insert(None);
        }
        let counts = join_all(names.keys().map(|name| cluster.stream_viewers(name))).await;
        names
            .into_iter()
            .zip(counts)
            .filter_map(|((name, origin), viewers)| {
                let local = locals.iter().find(|info| info.name == name).cloned();
                let remote = viewers.ok().map(|viewers| (origin, viewers.per_node));
                self.merge(&name, local, remote)
            })
            .collect()
    }

    /// This node's engine figures of `stream` joined with what the cluster reports
    /// (`remote`: the origin's node id and each node's viewers; `None`: unreachable).
    fn merge(
        &self,
        stream: &str,
        local: Option<StreamInfo>,
        remote: Option<Remote>,
    ) -> Option<ClusterStreamInfo> {
        let me = self.node_id();
        let partial = remote.is_none();
        let (origin, per_node) = remote.unwrap_or_else(|| {
            let origin = self.directory().is_origin(stream).then(|| me.to_owned());
            (origin, Vec::new())
        });
        merge(me, stream, local, origin, per_node, partial)
    }

    /// Sets the `directo_cluster_*` gauges from Redis: live nodes and their viewers, live
    /// streams, and each stream's viewers per node. Label sets reported last time and gone
    /// now are set to 0 (the exporter keeps every series it has seen).
    pub async fn refresh_metrics(&self, reported: &mut Reported) {
        let cluster = self.cluster();
        let stats = cluster.stats();
        metrics::gauge!("directo_cluster_redis_reachable").set(if stats.redis_reachable {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("directo_cluster_heartbeats_failed").set(stats.heartbeats_failed as f64);
        metrics::gauge!("directo_cluster_messages_rejected")
            .set((stats.messages_forged + stats.messages_stale + stats.messages_replayed) as f64);
        metrics::gauge!("directo_cluster_draining").set(if self.is_draining() { 1.0 } else { 0.0 });
        if !stats.redis_reachable {
            return;
        }
        let (Ok(nodes), Ok(streams)) = tokio::join!(cluster.nodes(), cluster.streams()) else {
            return;
        };
        metrics::gauge!("directo_cluster_nodes").set(nodes.len() as f64);
        metrics::gauge!("directo_cluster_streams").set(streams.len() as f64);
        let mut now = Reported::new();
        for node in &nodes {
            metrics::gauge!("directo_cluster_node_viewers", "node" => node.id.clone())
                .set(node.load.viewers as f64);
        }
        let names: BTreeSet<String> = streams
            .into_iter()
            .map(|entry| entry.stream)
            .chain(self.engine().streams().iter().map(|info| info.name.clone()))
            .collect();
        let counts = join_all(names.iter().map(|name| cluster.stream_viewers(name))).await;
        for (name, viewers) in names.iter().zip(counts) {
            let Ok(viewers) = viewers else { continue };
            metrics::gauge!("directo_cluster_stream_viewers", "stream" => name.clone())
                .set(viewers.total as f64);
            for (node, count) in viewers.per_node {
                metrics::gauge!("directo_cluster_viewers", "stream" => name.clone(), "node" => node.clone())
                    .set(count as f64);
                now.insert((name.clone(), node));
            }
        }
        for (stream, node) in reported.difference(&now) {
            metrics::gauge!("directo_cluster_viewers", "stream" => stream.clone(), "node" => node.clone())
                .set(0.0);
        }
        let gone_streams: BTreeSet<&String> = reported
            .iter()
            .map(|(stream, _)| stream)
            .filter(|stream| !names.contains(*stream))
            .collect();
        for stream in gone_streams {
            metrics::gauge!("directo_cluster_stream_viewers", "stream" => stream.clone()).set(0.0);
        }
        *reported = now;
    }
}

/// The cluster view of one stream: the local engine's figures (if any) with `viewers`
/// replaced by the sum over nodes, this node's count taken from `local`.
pub fn merge(
    me: &str,
    stream: &str,
    local: Option<StreamInfo>,
    origin: Option<String>,
    per_node: Vec<(String, u64)>,
    partial: bool,
) -> Option<ClusterStreamInfo> {
    let mut nodes: BTreeMap<String, u64> = per_node
        .into_iter()
        .filter(|(node, count)| node != me && *count > 0)
        .collect();
    if let Some(info) = &local
        && info.viewers > 0
    {
        nodes.insert(me.to_owned(), info.viewers as u64);
    }
    let total: u64 = nodes.values().sum();
    if local.is_none() && origin.is_none() && total == 0 {
        return None;
    }
    let published_elsewhere = origin.as_deref().is_some_and(|node| node != me);
    let mut info = local.unwrap_or_else(|| StreamInfo {
        name: stream.to_owned(),
        live: false,
        tracks: Vec::new(),
        viewers: 0,
        bitrate_bps: 0,
        recording: false,
    });
    info.live |= published_elsewhere;
    info.viewers = usize::try_from(total).unwrap_or(usize::MAX);
    Some(ClusterStreamInfo {
        stream: info,
        origin,
        nodes,
        partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(viewers: usize, live: bool) -> StreamInfo {
        StreamInfo {
            name: "s".into(),
            live,
            tracks: Vec::new(),
            viewers,
            bitrate_bps: 1000,
            recording: live,
        }
    }

    #[test]
    fn totals_add_every_node_with_this_nodes_own_count_fresh() {
        let per_node = vec![("a".into(), 1), ("b".into(), 30), ("c".into(), 0)];
        let view = merge(
            "a",
            "s",
            Some(local(12, true)),
            Some("a".into()),
            per_node,
            false,
        )
        .expect("a live stream");
        assert_eq!(view.stream.viewers, 42);
        assert_eq!(
            view.nodes,
            BTreeMap::from([("a".into(), 12), ("b".into(), 30)])
        );
        assert!(view.stream.live && view.stream.recording);
    }

    #[test]
    fn a_stream_published_elsewhere_is_live_here_too() {
        let view = merge(
            "b",
            "s",
            None,
            Some("a".into()),
            vec![("a".into(), 3)],
            false,
        )
        .expect("published on a");
        assert!(view.stream.live);
        assert_eq!(view.stream.viewers, 3);
        assert_eq!(view.origin.as_deref(), Some("a"));
        assert!(view.stream.tracks.is_empty());
    }

    #[test]
    fn the_origin_node_believes_its_engine_about_live() {
        let view = merge(
            "a",
            "s",
            Some(local(0, false)),
            Some("a".into()),
            Vec::new(),
            false,
        )
        .expect("held here");
        assert!(!view.stream.live);
    }

    #[test]
    fn what_redis_said_is_reused_for_a_heartbeat() {
        let cache = RemoteCache::default();
        let t0 = Instant::now();
        assert_eq!(cache.get("s", t0), None);
        cache.put("s", (Some("a".into()), vec![("a".into(), 3)]), t0);
        assert_eq!(
            cache.get("s", t0 + REMOTE_TTL / 2),
            Some((Some("a".into()), vec![("a".into(), 3)]))
        );
        assert_eq!(cache.get("s", t0 + REMOTE_TTL), None);
        assert_eq!(cache.get("other", t0), None);
    }

    #[test]
    fn nothing_anywhere_is_none() {
        assert_eq!(
            merge("a", "s", None, None, vec![("b".into(), 0)], false),
            None
        );
        let partial = merge("a", "s", Some(local(2, true)), None, Vec::new(), true).expect("local");
        assert!(partial.partial);
        assert_eq!(partial.stream.viewers, 2);
    }
}

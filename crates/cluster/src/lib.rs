//! Directo's cluster coordination on Redis: the node registry, the stream directory (who is
//! a stream's origin), the relay tree of each stream, per-node viewer counts, and signed
//! pub/sub for what crosses nodes. No media and no HTTP: the server drives a [`Cluster`]
//! handle and decides what to do with the answers.
//!
//! ```text
//! let cluster = Cluster::start(ClusterConfig::new(url, "edge-1", "https://edge-1:8443", secret)).await?;
//! match cluster.claim_origin("launch").await? { Claim::Acquired => …, Claim::HeldBy(origin) => … }
//! ```
//!
//! # Key schema
//!
//! `{ns}` is the namespace (default `directo`), so several clusters share one Redis. Lease
//! `L` = 3 s, heartbeat `H` = 1 s by default ([`Timing`]). Expiry scores are Unix ms on
//! Redis' clock (`TIME` inside the scripts), never a node's.
//!
//! | key / channel | type | holds | lease, refreshed by |
//! |---|---|---|---|
//! | `{ns}:node:{node}` | string (JSON) | id, url, instance, beat, start time, [`NodeLoad`] | `L`, its node every `H` |
//! | `{ns}:nodes` | sorted set | node id → expiry | `L` past the last touch; pruned on read |
//! | `{ns}:origin:{stream}` | string (JSON) | origin node id and url ([`OriginHolder`]) | `L`, the holder every `H` (re-created if lost) |
//! | `{ns}:streams` | sorted set | stream → claim expiry | as above |
//! | `{ns}:relay:{stream}:{node}` | string (JSON) | relay's url, upstream, depth | `L`, the relay every `H` |
//! | `{ns}:relays:{stream}` | sorted set | relaying node id → expiry | as above |
//! | `{ns}:viewers:{stream}:{node}` | string | the node's viewer count of the stream | `L`, the node every `H` |
//! | `{ns}:audience:{stream}` | sorted set | node id → expiry | as above |
//! | `{ns}:msg:chat:{stream}` | channel | chat, authority (origin) → every node | — |
//! | `{ns}:msg:chat-in:{stream}` | channel | chat input, edges → the authority | — |
//! | `{ns}:msg:node:{node}` | channel | to one node: deliver, kick, drain | — |
//! | `{ns}:msg:admin` | channel | cluster-wide admin | — |
//!
//! Why this shape:
//! - **Keys with `PX` leases plus a sorted-set index** (`leased.rs`): the key's lease is the
//!   truth, so a dead node's entries vanish by themselves; the index lists a stream's relays
//!   or the cluster's nodes without `SCAN`. Redis 7.0 has no per-field hash expiry.
//! - **Refreshed, not written once**: one pipeline per heartbeat rewrites every entry the
//!   node holds (`SET … PX`, not `PEXPIRE`), so a Redis that restarted empty is refilled
//!   within `H` and claims come back by themselves (OvenMediaEngine #1530 is the bug this
//!   avoids).
//! - **Claims by Lua**: take-if-free-or-ours, renew-or-recreate and compare-and-delete are
//!   each one script, so two publishers racing get one winner and a late release cannot
//!   delete another node's claim. Claims are owned by node id: a node restarted under the
//!   same id inherits its own claims (the old process is dead; `start` refuses to run next
//!   to a live one).
//! - **Names checked before any command**: stream names ([`signaling_proto::is_valid_stream_name`])
//!   and node ids (`[A-Za-z0-9._:-]{1,64}`) become keys only through checked types.
//! - **Signed messages**: HMAC-SHA256 (key derived from the shared secret) over the channel
//!   (namespace and topic), sender, timestamp, nonce and payload; forged, stale (±30 s) and
//!   replayed frames are dropped and counted ([`ClusterStats`]).
//!
//! # Failure model
//!
//! - **A node dies**: its heartbeats stop; its record, claims, relays and counts expire
//!   within `L`. Another publisher can then claim its streams. Dropping every [`Cluster`]
//!   clone behaves the same; [`Cluster::shutdown`] removes everything at once.
//! - **Redis is down or hung**: every call answers within the call timeout (1 s), with
//!   [`ClusterError::Unavailable`] (the server answers `503` + `Retry-After`). The
//!   heartbeat retries every `H`; [`ClusterEvent::RedisLost`] / [`ClusterEvent::RedisBack`]
//!   report the transitions. Nothing needs restarting.
//! - **Redis restarts empty**: the next heartbeat rewrites the node record, claims, relays
//!   and counts; scripts are reloaded on `NOSCRIPT`; the pub/sub task notices the dropped
//!   connection (or a failed ping) and re-subscribes every channel. Messages published
//!   while it was down are lost (pub/sub is fire and forget).
//! - **A node is cut off longer than `L`** while Redis lives: its claims expire and another
//!   node may take a stream; on renewal the first node sees the new holder and emits
//!   [`ClusterEvent::OriginLost`] instead of overwriting it.
//! - **Two processes with one node id**: `start` watches an existing record for up to 2 `H`
//!   and refuses with [`ClusterError::Conflict`] if it is still heartbeating.
//! - Not covered: Redis Cluster (keys of one operation are not hash-tagged into one slot)
//!   and replicas' asynchronous failover (a promoted replica may miss the last writes; the
//!   next heartbeat rewrites them, and a claim may be briefly double-held in that window).
//!
//! # Client
//!
//! The `redis` crate (redis-rs, maintained by Redis Inc.): its [`redis::aio::ConnectionManager`]
//! reconnects by itself and multiplexes every command on one connection, pub/sub gets a
//! dedicated connection we own (so re-subscription after a reconnect is ours to see and
//! test), and `rediss://` uses rustls with ring (no OpenSSL; the system's roots, or a private
//! CA from [`ClusterConfig::tls_ca_pem`]). `fred` would also fit, but hides reconnection and
//! re-subscription inside its own policies and brings more than this crate uses.
//!
//! # Cost
//!
//! Measured on loopback with `examples/cluster_timings.rs` (2 shared cores): 20 nodes
//! refreshing 150 entries each (3000 entries a second) cost Redis about 4.5 % of a core; a
//! claim or lookup is one round trip (~0.1 ms), a listing two (~0.5 ms for 50 relays). An
//! empty Redis is refilled within one heartbeat (~0.9 s), a dead node is gone after one
//! lease, and with Redis down a call answers in ~0.1 ms (refused) or at the call timeout
//! (hung).

mod audience;
mod backend;
mod bus;
mod cluster;
mod config;
mod error;
mod event;
mod keeper;
mod keys;
mod leased;
mod message;
mod names;
mod node;
mod origin;
mod redact;
mod relay;
mod replay;
mod scripts;
mod stats;
mod topic;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use audience::StreamViewers;
pub use bus::Subscription;
pub use cluster::Cluster;
pub use config::{ClusterConfig, DEFAULT_NAMESPACE, Timing};
pub use error::{ClusterError, Result};
pub use event::ClusterEvent;
pub use message::ClusterMessage;
pub use names::{is_valid_namespace, is_valid_node_id};
pub use node::{NodeInfo, NodeLoad};
pub use origin::{Claim, OriginHolder, StreamOrigin};
pub use relay::{Relay, RelayInfo, Upstream, choose_upstream};
pub use stats::ClusterStats;
pub use topic::Topic;

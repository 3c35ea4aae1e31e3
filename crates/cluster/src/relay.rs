//! Relays: edges pulling a stream from its origin or from another edge, and the choice of
//! whom a new edge pulls from.
//!
//! The relays of a stream form a tree rooted at the origin. [`choose_upstream`] keeps it a
//! tree of bounded fan-out: the origin while it has room, then the shallowest relay with
//! room, so the origin's work stays flat however large the audience grows and the delay
//! grows with the tree's depth, logarithmically. It is a pure function of what
//! [`crate::Cluster::relays_of`] returns, so it is tested without Redis.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::origin::OriginHolder;

/// What an edge says about its relay of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayInfo {
    /// The node it pulls the stream from (the origin or another relay).
    pub upstream: String,
    /// Hops from the origin: 1 when pulling from the origin itself.
    pub depth: u32,
}

/// One relay of a stream, as [`crate::Cluster::relays_of`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The relaying node's id.
    pub node: String,
    /// Its URL, where further edges pull from.
    pub url: String,
    /// Whom it pulls from, and how deep it sits.
    pub info: RelayInfo,
    /// How many relays pull from it.
    pub children: usize,
}

/// The JSON stored at `{ns}:relay:{stream}:{node}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RelayRecord {
    pub(crate) node: String,
    pub(crate) url: String,
    pub(crate) upstream: String,
    pub(crate) depth: u32,
}

/// Where a new edge should pull a stream from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The node to pull from.
    pub node: String,
    /// Its URL.
    pub url: String,
    /// The depth the new edge will have (the upstream's plus one); register it with this.
    pub depth: u32,
}

/// Counts children: how many of `relays` pull from each node.
pub(crate) fn count_children(relays: &mut [Relay]) {
    let mut children: HashMap<String, usize> = HashMap::new();
    for relay in relays.iter() {
        *children.entry(relay.info.upstream.clone()).or_default() += 1;
    }
    for relay in relays.iter_mut() {
        relay.children = children.get(&relay.node).copied().unwrap_or(0);
    }
}

/// Whom the edge `edge` should pull the stream from: the origin while it has fewer than
/// `max_relays_per_node` relays pulling from it, else the shallowest relay with room (fewest
/// children first, then node id, so every node computes the same answer).
///
/// Only relays whose chain of upstreams reaches the origin count (an orphan whose upstream
/// left would hand the edge nothing), depths are measured along that chain rather than
/// trusted from what relays reported, and `edge` and the relays below it are never chosen,
/// so the tree gets no cycle when an edge picks a new upstream. `None` when no node has room:
/// the caller then sends the viewer to an existing relay instead of adding one.
pub fn choose_upstream(
    origin: &OriginHolder,
    relays: &[Relay],
    max_relays_per_node: usize,
    edge: &str,
) -> Option<Upstream> {
    if max_relays_per_node == 0 || origin.node == edge {
        return None;
    }
    // Children as the tree stands without `edge`: it is the one looking for a place.
    let mut children_of: HashMap<&str, Vec<&Relay>> = HashMap::new();
    for relay in relays {
        if relay.node != edge && relay.node != origin.node {
            children_of
                .entry(relay.info.upstream.as_str())
                .or_default()
                .push(relay);
        }
    }
    let room = |node: &str| children_of.get(node).map_or(0, Vec::len) < max_relays_per_node;
    if room(&origin.node) {
        return Some(Upstream {
            node: origin.node.clone(),
            url: origin.url.clone(),
            depth: 1,
        });
    }
    // Breadth first from the origin: reachable relays only, each at its real depth.
    let mut best: Option<(u32, usize, &Relay)> = None;
    let mut seen: HashSet<&str> = HashSet::from([origin.node.as_str()]);
    let mut queue: VecDeque<(&str, u32)> = VecDeque::from([(origin.node.as_str(), 0)]);
    while let Some((node, depth)) = queue.pop_front() {
        for &child in children_of.get(node).into_iter().flatten() {
            if !seen.insert(child.node.as_str()) {
                continue;
            }
            let depth = depth + 1;
            let children = children_of.get(child.node.as_str()).map_or(0, Vec::len);
            let better = best.is_none_or(|(best_depth, best_children, best_relay)| {
                (depth, children, child.node.as_str())
                    < (best_depth, best_children, best_relay.node.as_str())
            });
            if children < max_relays_per_node && better {
                best = Some((depth, children, child));
            }
            queue.push_back((child.node.as_str(), depth));
        }
    }
    best.map(|(depth, _, relay)| Upstream {
        node: relay.node.clone(),
        url: relay.url.clone(),
        depth: depth + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> OriginHolder {
        OriginHolder {
            node: "origin".to_owned(),
            url: "https://origin".to_owned(),
        }
    }

    /// Relays given as (node, upstream); depths reported as 1 on purpose: the choice must
    /// measure them itself.
    fn relays(links: &[(&str, &str)]) -> Vec<Relay> {
        let mut relays: Vec<Relay> = links
            .iter()
            .map(|&(node, upstream)| Relay {
                node: node.to_owned(),
                url: format!("https://{node}"),
                info: RelayInfo {
                    upstream: upstream.to_owned(),
                    depth: 1,
                },
                children: 0,
            })
            .collect();
        count_children(&mut relays);
        relays
    }

    fn chosen(links: &[(&str, &str)], max: usize, edge: &str) -> Option<(String, u32)> {
        choose_upstream(&origin(), &relays(links), max, edge).map(|up| (up.node, up.depth))
    }

    #[test]
    fn the_origin_while_it_has_room() {
        assert_eq!(chosen(&[], 2, "e1"), Some(("origin".to_owned(), 1)));
        assert_eq!(
            chosen(&[("e1", "origin")], 2, "e2"),
            Some(("origin".to_owned(), 1))
        );
    }

    #[test]
    fn then_the_shallowest_relay_with_room_fewest_children_first() {
        let tree = [("a", "origin"), ("b", "origin"), ("a1", "a")];
        assert_eq!(chosen(&tree, 2, "new"), Some(("b".to_owned(), 2)));
        let full_first_level = [
            ("a", "origin"),
            ("b", "origin"),
            ("a1", "a"),
            ("a2", "a"),
            ("b1", "b"),
            ("b2", "b"),
        ];
        assert_eq!(
            chosen(&full_first_level, 2, "new"),
            Some(("a1".to_owned(), 3))
        );
    }

    #[test]
    fn counts_children_per_node() {
        let listed = relays(&[("a", "origin"), ("a1", "a"), ("a2", "a")]);
        let children: Vec<(&str, usize)> = listed
            .iter()
            .map(|relay| (relay.node.as_str(), relay.children))
            .collect();
        assert_eq!(children, [("a", 2), ("a1", 0), ("a2", 0)]);
    }

    #[test]
    fn orphans_and_the_edges_own_subtree_are_never_chosen() {
        // "0-lost" pulls from a node that left; "0-mine" pulls from the edge that is
        // re-choosing. Both have room and would win a tie by name, were they considered.
        let tree = [("a", "origin"), ("0-lost", "gone"), ("0-mine", "edge")];
        assert_eq!(chosen(&tree, 1, "edge"), Some(("a".to_owned(), 2)));
        let tree = [
            ("a", "origin"),
            ("a1", "a"),
            ("0-lost", "gone"),
            ("0-mine", "edge"),
        ];
        assert_eq!(chosen(&tree, 1, "edge"), Some(("a1".to_owned(), 3)));
        let tree = [("edge", "origin"), ("mine", "edge"), ("b", "origin")];
        assert_eq!(chosen(&tree, 2, "edge"), Some(("origin".to_owned(), 1)));
        assert_eq!(chosen(&tree, 1, "edge"), Some(("b".to_owned(), 2)));
    }

    #[test]
    fn cycles_do_not_loop() {
        let tree = [("a", "origin"), ("x", "y"), ("y", "x")];
        assert_eq!(chosen(&tree, 1, "new"), Some(("a".to_owned(), 2)));
    }

    #[test]
    fn nobody_with_room_or_no_room_at_all() {
        assert_eq!(
            chosen(&[("a", "origin")], 1, "a2").map(|c| c.0),
            Some("a".to_owned())
        );
        assert_eq!(
            chosen(&[("a", "origin"), ("a1", "a")], 1, "new"),
            Some(("a1".to_owned(), 3))
        );
        assert_eq!(chosen(&[], 0, "new"), None);
        assert_eq!(chosen(&[], 2, "origin"), None);
    }
}

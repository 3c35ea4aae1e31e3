//! Leased entries with an index: the one storage pattern behind nodes, relays, viewer counts
//! and (through the claim script) origins.
//!
//! An entry is a string key with a `PX` lease; its index is a sorted set of members scored by
//! the same expiry on Redis' clock. The key's lease is the truth (an expired key is gone);
//! the index only makes listing cheap (no `SCAN` over the keyspace) and is pruned when read.
//! Redis 7.0 (Debian 12's) has no per-field expiry in hashes, hence keys plus an index.

use redis::Pipeline;

use crate::backend::Backend;
use crate::error::Result;
use crate::scripts;

/// Adds the write of one entry to `pipe` (its reply is ignored).
pub(crate) fn touch(
    pipe: &mut Pipeline,
    entry: &str,
    index: &str,
    value: &str,
    lease_ms: &str,
    member: &str,
) {
    scripts::add(
        pipe,
        &scripts::TOUCH,
        &[entry, index],
        &[value, lease_ms, member],
    );
    pipe.ignore();
}

/// Adds the removal of one entry to `pipe` (replies ignored).
pub(crate) fn remove(pipe: &mut Pipeline, entry: &str, index: &str, member: &str) {
    pipe.del(entry).ignore().zrem(index, member).ignore();
}

/// The live entries of `index` as (member, value), in member order. `entry_key` names the
/// entry of a member, or refuses a member that is not a valid name (nothing in Redis is
/// trusted to be what we wrote; a refused member is skipped, never sent back to Redis).
pub(crate) async fn list(
    backend: &Backend,
    index: &str,
    entry_key: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let mut live = redis::pipe();
    scripts::add(&mut live, &scripts::LIVE, &[index], &[]);
    let (members,): (Vec<String>,) = backend.query(&live).await?;
    let (members, keys): (Vec<String>, Vec<String>) = members
        .into_iter()
        .filter_map(|member| entry_key(&member).map(|key| (member, key)))
        .unzip();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut read = redis::pipe();
    read.cmd("MGET").arg(&keys);
    let (values,): (Vec<Option<String>>,) = backend.query(&read).await?;
    let mut entries: Vec<(String, String)> = members
        .into_iter()
        .zip(values)
        // A member whose key expired between the two reads: its lease ran out, skip it.
        .filter_map(|(member, value)| value.map(|value| (member, value)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

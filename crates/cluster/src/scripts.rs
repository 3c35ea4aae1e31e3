//! The Lua scripts that make leased entries atomic, and how a call site invokes them.
//!
//! Scripts run by SHA (`EVALSHA`); a Redis that restarted has forgotten them and answers
//! `NOSCRIPT`, upon which [`crate::backend`] loads them all again and retries. Each script
//! reads the clock with `TIME` inside Redis, so every expiry score is on one clock (Redis')
//! whatever the nodes' clocks say.

use std::sync::LazyLock;

use redis::{Pipeline, Script};

/// Writes one leased entry (`SET … PX`) and records it in its index (a sorted set scored by
/// the same expiry), keeping the index itself alive for at least one lease.
///
/// KEYS: entry, index. ARGV: value, lease ms, index member.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local lease = tonumber(ARGV[2])
local expiry = t[1] * 1000 + math.floor(t[2] / 1000) + lease
redis.call('SET', KEYS[1], ARGV[1], 'PX', lease)
redis.call('ZADD', KEYS[2], expiry, ARGV[3])
if redis.call('PTTL', KEYS[2]) < lease then
  redis.call('PEXPIRE', KEYS[2], lease)
end
return 1
",
    )
});

/// Takes or renews an origin claim: written when free or already this node's (renewal, or
/// re-creation after Redis lost it), left alone when another node holds it. Returns the value
/// that holds the claim afterwards, so the caller sees who won in the same round trip.
///
/// KEYS: origin, streams index. ARGV: value, lease ms, stream, node id.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, holder = pcall(cjson.decode, current)
  if not ok or type(holder) ~= 'table' or holder['node'] ~= ARGV[4] then
    return current
  end
end
local t = redis.call('TIME')
local lease = tonumber(ARGV[2])
local expiry = t[1] * 1000 + math.floor(t[2] / 1000) + lease
redis.call('SET', KEYS[1], ARGV[1], 'PX', lease)
redis.call('ZADD', KEYS[2], expiry, ARGV[3])
if redis.call('PTTL', KEYS[2]) < lease then
  redis.call('PEXPIRE', KEYS[2], lease)
end
return ARGV[1]
",
    )
});

/// Deletes an origin claim only if this node still holds it (compare-and-delete): a claim
/// that expired and went to another node must survive our late release. Returns 1 if deleted.
///
/// KEYS: origin, streams index. ARGV: node id, stream.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local ok, holder = pcall(cjson.decode, current)
if not ok or type(holder) ~= 'table' or holder['node'] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
",
    )
});

/// Drops the index members whose lease ran out and returns the rest: the candidates whose
/// entries a following `MGET` reads (an entry may still expire in between; callers skip
/// missing ones).
///
/// KEYS: index.
pub(crate) static LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
",
    )
});

/// Every script, for loading them into a Redis that forgot them.
pub(crate) fn all() -> [&'static Script; 4] {
    [&TOUCH, &CLAIM, &RELEASE, &LIVE]
}

/// Adds `EVALSHA script keys args` to `pipe`.
pub(crate) fn add(pipe: &mut Pipeline, script: &Script, keys: &[&str], args: &[&str]) {
    pipe.cmd("EVALSHA")
        .arg(script.get_hash())
        .arg(keys.len())
        .arg(keys)
        .arg(args);
}

//! Per-address request rate limiting for signaling (WHIP, WHEP, `/ws`, tokens): a token
//! bucket per client IP, so one client flooding the server is refused with `429` and a
//! `Retry-After` while everybody else is served as usual.
//!
//! A bucket that has filled up again behaves exactly like a new one, so full buckets are
//! forgotten once a minute: the map holds the addresses of the last minute or so, not of
//! every client the server ever saw.

use signaling_proto::ErrorCode;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warp::Filter;

use crate::error::ApiError;

/// How many addresses are tracked before idle ones are forgotten at once.
const MAX_TRACKED: usize = 100_000;
/// How often full buckets are forgotten anyway.
const FORGET_INTERVAL: Duration = Duration::from_secs(60);

/// Each address's tokens and when they were counted, and when full ones were last forgotten.
#[derive(Debug)]
struct Buckets {
    by_ip: HashMap<IpAddr, (f64, Instant)>,
    forgotten_at: Instant,
}

/// A token bucket per client address.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    buckets: Arc<Mutex<Buckets>>,
    per_second: f64,
    burst: f64,
}

impl RateLimiter {
    /// At most `per_minute` requests a minute per address, in bursts of up to `burst`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            buckets: Arc::new(Mutex::new(Buckets {
                by_ip: HashMap::new(),
                forgotten_at: Instant::now(),
            })),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
        }
    }

    /// Take one request from `ip`'s bucket; `Err(seconds)` says when to retry.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.by_ip.len() > MAX_TRACKED
            || now.saturating_duration_since(buckets.forgotten_at) >= FORGET_INTERVAL
        {
            let per_second = self.per_second;
            let burst = self.burst;
            buckets.by_ip.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second < burst
            });
            buckets.forgotten_at = now;
        }
        let (tokens, at) = buckets.by_ip.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_second)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }

    /// A filter that passes requests within the limit and rejects the others with `429`.
    /// Only requests that create work count: anything but GET/HEAD/OPTIONS, and `/ws`
    /// upgrades. Pages, health checks, metrics scrapes and polls never use up the budget.
    pub fn filter(&self) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone + use<> {
        let limiter = self.clone();
        client_ip()
            .and(warp::method())
            .and(warp::path::full())
            .and_then(
                move |remote: Option<IpAddr>,
                      method: warp::http::Method,
                      path: warp::path::FullPath| {
                    let limiter = limiter.clone();
                    async move {
                        let reads = matches!(
                            method,
                            warp::http::Method::GET
                                | warp::http::Method::HEAD
                                | warp::http::Method::OPTIONS
                        );
                        let counted = !reads || path.as_str() == "/ws";
                        let Some(remote) = remote.filter(|_| counted) else {
                            return Ok(());
                        };
                        limiter.check(remote, Instant::now()).map_err(|retry| {
                            warp::reject::custom(
                                ApiError::new(
                                    ErrorCode::RateLimited,
                                    "too many requests from your address",
                                )
                                .retry_after(retry),
                            )
                        })
                    }
                },
            )
            .untuple_one()
    }
}

/// Reverse proxies whose `X-Forwarded-For` is believed (set once at start-up).
static TRUSTED_PROXIES: std::sync::OnceLock<Vec<IpAddr>> = std::sync::OnceLock::new();

/// Believe `X-Forwarded-For` from these addresses (a reverse proxy in front of Directo), so
/// limits and bans apply to the real client rather than to the proxy.
pub fn set_trusted_proxies(proxies: Vec<IpAddr>) {
    let _ = TRUSTED_PROXIES.set(proxies);
}

fn header_ip(headers: &warp::http::HeaderMap, name: &str) -> Option<IpAddr> {
    let value = headers.get(name)?.to_str().ok()?;
    // A proxy appends the address it saw last.
    value.rsplit(',').next()?.trim().parse().ok()
}

/// The client's IP address: the TCP peer; behind the built-in TLS front end the address it
/// recorded (a client cannot set that header itself: the front end replaces it); behind a
/// trusted reverse proxy the last `X-Forwarded-For` entry.
pub fn client_ip()
-> impl Filter<Extract = (Option<IpAddr>,), Error = std::convert::Infallible> + Clone {
    warp::addr::remote()
        .and(warp::header::headers_cloned())
        .map(
            |remote: Option<SocketAddr>, headers: warp::http::HeaderMap| {
                let peer = match remote {
                    Some(addr) => Some(addr.ip()),
                    None => header_ip(&headers, crate::tls::CLIENT_IP_HEADER),
                };
                let trusted = TRUSTED_PROXIES.get().map(Vec::as_slice).unwrap_or_default();
                match peer {
                    Some(ip) if trusted.contains(&ip) => {
                        header_ip(&headers, "x-forwarded-for").or(Some(ip))
                    }
                    other => other,
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_then_recovery() {
        let limiter = RateLimiter::new(60, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(ip, t0).is_ok());
        }
        let retry = limiter.check(ip, t0).unwrap_err();
        assert!(retry >= 1);
        assert!(
            limiter.check(other, t0).is_ok(),
            "another address is not affected"
        );
        assert!(limiter.check(ip, t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn addresses_whose_bucket_refilled_are_forgotten() {
        let limiter = RateLimiter::new(60, 3);
        let t0 = Instant::now();
        for i in 0..50u8 {
            assert!(limiter.check(IpAddr::from([192, 0, 2, i]), t0).is_ok());
        }
        // A minute later their buckets are full again: only the address asking now is kept.
        let busy: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(limiter.check(busy, t0 + FORGET_INTERVAL).is_ok());
        let tracked = limiter.buckets.lock().unwrap().by_ip.len();
        assert_eq!(tracked, 1);
    }
}

//! Per-address limits (WHIP, WHEP, `/ws`, the API), each answered with `429`, a
//! `Retry-After` and the usual JSON error, for the one address only:
//!
//! - **new viewing sessions** (`/whep/…` requests and `/ws` upgrades): a token bucket per
//!   address (`--new-sessions-burst`, `--new-sessions-per-second`), so one address cannot
//!   flood the server while an office of hundreds behind one public address still gets in.
//!   How many watch from one address is not limited; viewers are limited per stream.
//! - **other requests that create work** (publishing, the admin API): a token bucket per
//!   address (`--max-requests-per-minute`). Open publisher sessions per address are capped by
//!   the media engine (`--max-sessions-per-ip`).
//! - **failed credentials** (a wrong key or token, an unknown session URL): after
//!   `--max-auth-failures-per-minute` an address presenting credentials is refused until its
//!   minute is over (see `failures.rs`); it still watches public streams.
//!
//! Pages, health checks, metrics scrapes and polls are never counted. Every map is bounded:
//! idle addresses are forgotten (see `bucket.rs` and `failures.rs`). Refusals are counted in
//! `directo_rate_limited_total{limit}`.

mod bucket;
mod failures;

use signaling_proto::ErrorCode;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use warp::Filter;
use warp::reply::Reply;

use crate::error::ApiError;
use bucket::Buckets;
use failures::Failures;

/// The per-address limits' settings.
#[derive(Clone, Copy, Debug)]
pub struct LimitConfig {
    /// Requests that create work, other than viewing sessions, per minute (bursts of up to
    /// ten seconds' worth, at least ten).
    pub requests_per_minute: u32,
    /// New viewing sessions per second, sustained.
    pub sessions_per_second: u32,
    /// New viewing sessions at once.
    pub sessions_burst: u32,
    /// Failed credentials per minute before an address presenting credentials is refused.
    pub auth_failures_per_minute: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            requests_per_minute: 600,
            sessions_per_second: 20,
            sessions_burst: 100,
            auth_failures_per_minute: 20,
        }
    }
}

/// What a request is, for the buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Reads: pages, polls, health checks, scrapes.
    Free,
    /// `/whep/…` and `/ws` upgrades.
    Viewing,
    /// Anything else that creates work.
    Work,
}

fn classify(method: &warp::http::Method, path: &str) -> Class {
    use warp::http::Method;
    if path == "/ws" {
        return Class::Viewing;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Class::Free;
    }
    if path.starts_with("/whep/") {
        Class::Viewing
    } else {
        Class::Work
    }
}

/// What the credential guard needs to know of a request.
#[derive(Clone, Debug)]
struct Facts {
    ip: Option<IpAddr>,
    /// It presents a credential: `Authorization`, or `?token=`.
    credential: bool,
    /// It names a WHIP/WHEP session (`DELETE`, `PATCH`, quality): the URL is the credential.
    session_url: bool,
}

fn facts() -> impl Filter<Extract = (Facts,), Error = std::convert::Infallible> + Clone {
    client_ip()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(
            |ip: Option<IpAddr>,
             method: warp::http::Method,
             path: warp::path::FullPath,
             headers: warp::http::HeaderMap,
             query: String| {
                let token = query
                    .split('&')
                    .any(|pair| pair.split('=').next() == Some("token"));
                let mut segments = path.as_str().trim_start_matches('/').split('/');
                let session_url = classify(&method, path.as_str()) != Class::Free
                    && matches!(segments.next(), Some("whip" | "whep"))
                    && segments.nth(1).is_some_and(|s| !s.is_empty());
                Facts {
                    ip,
                    credential: headers.contains_key("authorization") || token,
                    session_url,
                }
            },
        )
}

/// Counts a `429` of one of these limits: `new_sessions`, `requests` or `auth_failures`.
fn refused(limit: &'static str) {
    metrics::counter!("directo_rate_limited_total", "limit" => limit).increment(1);
}

/// Every per-address limit of the HTTP side.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    requests: Buckets,
    sessions: Buckets,
    failures: Failures,
}

impl RateLimiter {
    /// Limits with these settings.
    pub fn new(config: LimitConfig) -> Self {
        metrics::describe_counter!(
            "directo_rate_limited_total",
            "requests refused with 429 by a per-address limit, by limit (new_sessions, requests, auth_failures)"
        );
        let per_minute = config.requests_per_minute.max(1);
        RateLimiter {
            requests: Buckets::new(f64::from(per_minute) / 60.0, (per_minute / 6).max(10)),
            sessions: Buckets::new(
                f64::from(config.sessions_per_second.max(1)),
                config.sessions_burst,
            ),
            failures: Failures::new(config.auth_failures_per_minute),
        }
    }

    /// A filter that passes requests within their address's buckets and rejects the others
    /// with `429`. Reads never use up the budget.
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
                        let (buckets, what, limit) = match classify(&method, path.as_str()) {
                            Class::Free => return Ok(()),
                            Class::Viewing => (
                                &limiter.sessions,
                                "too many new sessions from your address",
                                "new_sessions",
                            ),
                            Class::Work => (
                                &limiter.requests,
                                "too many requests from your address",
                                "requests",
                            ),
                        };
                        let Some(remote) = remote else {
                            return Ok(());
                        };
                        buckets.check(remote, Instant::now()).map_err(|retry| {
                            refused(limit);
                            warp::reject::custom(
                                ApiError::new(ErrorCode::RateLimited, what).retry_after(retry),
                            )
                        })
                    }
                },
            )
            .untuple_one()
    }

    /// May `ip` present a credential now (not over its failures this minute)?
    pub(crate) fn check_credential(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else {
            return Ok(());
        };
        self.failures.check(ip, Instant::now()).map_err(|retry| {
            refused("auth_failures");
            ApiError::new(
                ErrorCode::RateLimited,
                format!("too many failed credentials from your address; try again in {retry} s"),
            )
            .retry_after(retry)
        })
    }

    /// `ip` presented a credential that was not valid.
    pub(crate) fn credential_failed(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.failures.failed(ip, Instant::now());
        }
    }

    /// Wrap every route: a request presenting a credential (or naming a session) from an
    /// address over its failures is refused with `429`; a `401` to a request that presented
    /// a credential, or a `404` to one naming a session, counts as a failure.
    pub fn guard<F, R>(
        &self,
        routes: F,
    ) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
    + Clone
    + use<F, R>
    where
        F: Filter<Extract = (R,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
        R: Reply,
    {
        let before = self.clone();
        let after = self.clone();
        facts()
            .and_then(move |facts: Facts| {
                let limiter = before.clone();
                async move {
                    if facts.credential || facts.session_url {
                        limiter
                            .check_credential(facts.ip)
                            .map_err(warp::reject::custom)?;
                    }
                    Ok::<_, warp::Rejection>(facts)
                }
            })
            .and(routes)
            .map(move |facts: Facts, reply: R| {
                let response = reply.into_response();
                let status = response.status().as_u16();
                if (status == 401 && facts.credential) || (status == 404 && facts.session_url) {
                    after.credential_failed(facts.ip);
                }
                response
            })
            .recover(crate::error::recover)
            .unify()
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
    use warp::http::Method;

    #[test]
    fn watching_has_its_own_budget_and_reads_are_free() {
        assert_eq!(classify(&Method::POST, "/whep/launch"), Class::Viewing);
        assert_eq!(
            classify(&Method::DELETE, "/whep/launch/abc"),
            Class::Viewing
        );
        assert_eq!(classify(&Method::GET, "/ws"), Class::Viewing);
        assert_eq!(classify(&Method::POST, "/whip/launch"), Class::Work);
        assert_eq!(classify(&Method::POST, "/api/tokens"), Class::Work);
        assert_eq!(classify(&Method::GET, "/watch/launch"), Class::Free);
        assert_eq!(classify(&Method::OPTIONS, "/whep/launch"), Class::Free);
    }
}

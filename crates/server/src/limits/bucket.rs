//! A token bucket per client address.
//!
//! A bucket that has filled up again behaves exactly like a new one, so full buckets are
//! forgotten once a minute: the map holds the addresses of the last minute or so, not of
//! every client the server ever saw.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many addresses are tracked before idle ones are forgotten at once.
pub(super) const MAX_TRACKED: usize = 100_000;
/// How often full buckets are forgotten anyway.
pub(super) const FORGET_INTERVAL: Duration = Duration::from_secs(60);

/// Each address's tokens and when they were counted, and when full ones were last forgotten.
#[derive(Debug)]
struct State {
    by_ip: HashMap<IpAddr, (f64, Instant)>,
    forgotten_at: Instant,
}

/// A token bucket per client address: up to `burst` at once, refilled at `per_second`.
#[derive(Clone, Debug)]
pub struct Buckets {
    state: Arc<Mutex<State>>,
    per_second: f64,
    burst: f64,
}

impl Buckets {
    /// `per_second` tokens a second (fractions allowed), in bursts of up to `burst`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Buckets {
            state: Arc::new(Mutex::new(State {
                by_ip: HashMap::new(),
                forgotten_at: Instant::now(),
            })),
            per_second: if per_second.is_finite() && per_second > 0.0 {
                per_second
            } else {
                1.0 / 60.0
            },
            burst: f64::from(burst.max(1)),
        }
    }

    /// Take one token from `ip`'s bucket; `Err(seconds)` says when to retry.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let Ok(mut state) = self.state.lock() else {
            return Ok(());
        };
        if state.by_ip.len() > MAX_TRACKED
            || now.saturating_duration_since(state.forgotten_at) >= FORGET_INTERVAL
        {
            let per_second = self.per_second;
            let burst = self.burst;
            state.by_ip.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second < burst
            });
            state.forgotten_at = now;
        }
        let (tokens, at) = state.by_ip.entry(ip).or_insert((self.burst, now));
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

    /// How many addresses are tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.state.lock().map(|s| s.by_ip.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_then_recovery() {
        let buckets = Buckets::new(1.0, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(buckets.check(ip, t0).is_ok());
        }
        let retry = buckets.check(ip, t0).unwrap_err();
        assert!(retry >= 1);
        assert!(
            buckets.check(other, t0).is_ok(),
            "another address is not affected"
        );
        assert!(buckets.check(ip, t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn the_sustained_rate_is_served() {
        let buckets = Buckets::new(20.0, 100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        // An office of three hundred: a hundred at once, then a little under twenty a second.
        let served = (0..300u64)
            .filter(|&i| {
                let at = t0 + Duration::from_millis(i.saturating_sub(99) * 1000 / 19);
                buckets.check(ip, at).is_ok()
            })
            .count();
        assert_eq!(served, 300);
    }

    #[test]
    fn addresses_whose_bucket_refilled_are_forgotten() {
        let buckets = Buckets::new(1.0, 3);
        let t0 = Instant::now();
        for i in 0..50u8 {
            assert!(buckets.check(IpAddr::from([192, 0, 2, i]), t0).is_ok());
        }
        // A minute later their buckets are full again: only the address asking now is kept.
        let busy: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(buckets.check(busy, t0 + FORGET_INTERVAL).is_ok());
        assert_eq!(buckets.tracked(), 1);
    }
}

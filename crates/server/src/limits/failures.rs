//! Failed credentials per client address: after `limit` failures within a minute, an address
//! presenting credentials is refused (`429`) until that minute is over, so keys and tokens
//! cannot be guessed at speed, while the same address's viewers of public streams (who present
//! none) watch on.
//!
//! Each address has one window: the minute from its first failure. Windows that are over are
//! forgotten once a minute (and at once when too many addresses are tracked), so memory holds
//! the addresses that failed in the last minute or so.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bucket::{FORGET_INTERVAL, MAX_TRACKED};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct State {
    /// Each address's window start and failures in it.
    by_ip: HashMap<IpAddr, (Instant, u32)>,
    forgotten_at: Instant,
}

/// Failed credentials per address, per minute.
#[derive(Clone, Debug)]
pub struct Failures {
    state: Arc<Mutex<State>>,
    limit: u32,
}

impl Failures {
    /// At most `limit` failures a minute per address.
    pub fn new(limit: u32) -> Self {
        Failures {
            state: Arc::new(Mutex::new(State {
                by_ip: HashMap::new(),
                forgotten_at: Instant::now(),
            })),
            limit: limit.max(1),
        }
    }

    /// May `ip` present credentials now? `Err(seconds)` says when it may again.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let Ok(state) = self.state.lock() else {
            return Ok(());
        };
        match state.by_ip.get(&ip) {
            Some(&(start, count)) if count >= self.limit => {
                let elapsed = now.saturating_duration_since(start);
                if elapsed >= WINDOW {
                    Ok(())
                } else {
                    Err((WINDOW - elapsed).as_secs_f64().ceil().max(1.0) as u64)
                }
            }
            _ => Ok(()),
        }
    }

    /// `ip` presented a credential (or a session URL) that was not valid.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.by_ip.len() > MAX_TRACKED
            || now.saturating_duration_since(state.forgotten_at) >= FORGET_INTERVAL
        {
            state
                .by_ip
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
            state.forgotten_at = now;
        }
        let entry = state.by_ip.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
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
    fn refused_after_the_limit_until_the_minute_is_over() {
        let failures = Failures::new(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(failures.check(ip, t0).is_ok(), "before failure {i}");
            failures.failed(ip, t0);
        }
        let retry = failures
            .check(ip, t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(retry, 50);
        assert!(failures.check(other, t0).is_ok());
        assert!(failures.check(ip, t0 + WINDOW).is_ok());
        // A new minute counts from zero.
        failures.failed(ip, t0 + WINDOW);
        assert!(failures.check(ip, t0 + WINDOW).is_ok());
    }

    #[test]
    fn old_windows_are_forgotten() {
        let failures = Failures::new(3);
        let t0 = Instant::now();
        for i in 0..50u8 {
            failures.failed(IpAddr::from([192, 0, 2, i]), t0);
        }
        failures.failed("198.51.100.1".parse().unwrap(), t0 + FORGET_INTERVAL);
        assert_eq!(failures.tracked(), 1);
    }
}

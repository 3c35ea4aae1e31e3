//! Clients polling a stream's info (`GET /api/streams/{stream}`) the way the SDK's player did
//! before it learned of live/offline and viewer counts from pushed events: each client asks
//! once every interval, the clients' first asks spread over one interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Client, Url};
use tokio::runtime::Handle;

/// What the pollers got, counted while they run.
#[derive(Debug, Default)]
pub struct PollCounts {
    /// Answers with a 2xx status.
    pub ok: AtomicU64,
    /// Errors and other statuses.
    pub failed: AtomicU64,
}

/// Starts `clients` pollers of `url`, spread over `runtimes` in turn, each asking every
/// `interval` until `stop` is set.
pub fn start(
    url: Url,
    clients: usize,
    interval: Duration,
    runtimes: &[(Handle, Client)],
    stop: Arc<AtomicBool>,
) -> Arc<PollCounts> {
    let counts = Arc::new(PollCounts::default());
    if runtimes.is_empty() {
        return counts;
    }
    for index in 0..clients {
        let (runtime, http) = &runtimes[index % runtimes.len()];
        let offset = interval.mul_f64(index as f64 / clients.max(1) as f64);
        runtime.spawn(poll(
            http.clone(),
            url.clone(),
            offset,
            interval,
            Arc::clone(&counts),
            Arc::clone(&stop),
        ));
    }
    counts
}

async fn poll(
    http: Client,
    url: Url,
    offset: Duration,
    interval: Duration,
    counts: Arc<PollCounts>,
    stop: Arc<AtomicBool>,
) {
    tokio::time::sleep(offset).await;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let answered = match http.get(url.clone()).send().await {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        };
        let counter = if answered { &counts.ok } else { &counts.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

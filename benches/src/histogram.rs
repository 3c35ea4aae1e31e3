//! A small fixed-bucket latency histogram, cheap enough to keep one per viewer.
//!
//! Buckets are 10 µs wide up to 2 ms, 100 µs up to 20 ms, 1 ms up to 200 ms and 10 ms up to
//! 2 s, with one overflow bucket: about 740 counters, a few kilobytes, and a relative error
//! under 5% everywhere a forwarding delay is interesting.

use std::time::Duration;

/// Bucket layout: (upper bound in µs, bucket width in µs).
const TIERS: [(u64, u64); 4] = [
    (2_000, 10),
    (20_000, 100),
    (200_000, 1_000),
    (2_000_000, 10_000),
];

fn bucket_count() -> usize {
    let mut lower = 0;
    let mut count = 0;
    for (upper, width) in TIERS {
        count += ((upper - lower) / width) as usize;
        lower = upper;
    }
    count + 1
}

/// Counts of durations in fixed buckets.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; bucket_count()],
            total: 0,
        }
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample.
    pub fn record(&mut self, value: Duration) {
        let micros = value.as_micros().min(u128::from(u64::MAX)) as u64;
        let index = Self::index(micros).min(self.counts.len() - 1);
        self.counts[index] = self.counts[index].saturating_add(1);
        self.total += 1;
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        self.total += other.total;
    }

    /// How many samples were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `q` quantile (0.0..=1.0) as the upper edge of its bucket, or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                return Some(Duration::from_micros(Self::upper_edge(index)));
            }
        }
        Some(Duration::from_micros(Self::upper_edge(
            self.counts.len() - 1,
        )))
    }

    fn index(micros: u64) -> usize {
        let mut lower = 0;
        let mut offset = 0;
        for (upper, width) in TIERS {
            if micros < upper {
                return offset + ((micros - lower) / width) as usize;
            }
            offset += ((upper - lower) / width) as usize;
            lower = upper;
        }
        offset
    }

    fn upper_edge(index: usize) -> u64 {
        let mut lower = 0;
        let mut offset = 0;
        for (upper, width) in TIERS {
            let buckets = ((upper - lower) / width) as usize;
            if index < offset + buckets {
                return lower + (index - offset + 1) as u64 * width;
            }
            offset += buckets;
            lower = upper;
        }
        lower
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        let mut histogram = Histogram::new();
        for micros in 1..=1000u64 {
            histogram.record(Duration::from_micros(micros * 100));
        }
        let p50 = histogram.quantile(0.5).unwrap_or_default();
        let p99 = histogram.quantile(0.99).unwrap_or_default();
        assert!(
            (49_000..=51_000).contains(&(p50.as_micros() as u64)),
            "{p50:?}"
        );
        assert!(
            (98_000..=100_000).contains(&(p99.as_micros() as u64)),
            "{p99:?}"
        );
    }

    #[test]
    fn merging_adds_counts_and_huge_values_overflow() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(Duration::from_micros(5));
        b.record(Duration::from_secs(10));
        a.merge(&b);
        assert_eq!(a.len(), 2);
        assert_eq!(a.quantile(0.0), Some(Duration::from_micros(10)));
        assert_eq!(a.quantile(1.0), Some(Duration::from_secs(2)));
        assert_eq!(Histogram::new().quantile(0.5), None);
    }
}

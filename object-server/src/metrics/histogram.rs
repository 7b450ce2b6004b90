//! The time-to-first-byte histogram, in MinIO's layout.
//!
//! MinIO's v2 endpoints do not expose a Prometheus histogram for TTFB: they expose the gauge
//! `minio_s3_ttfb_seconds_distribution{api, le}`, one sample per upper bound holding the
//! *cumulative* count of requests at or below it, with `le` printed as `%.3f` (`"0.050"`,
//! `"10.000"`, `"+Inf"`). Its dashboards query exactly those label values, so we keep them.
//!
//! Recording costs one relaxed atomic add: each slot counts only the requests that fell into
//! it (the last slot is above the largest bound), and the cumulative sums are made when a
//! scrape reads the slots. No lock is taken on the request path.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds, MinIO's `s3_ttfb_seconds` buckets.
pub const BOUNDS: [f64; 8] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// [`BOUNDS`] in microseconds, what an observation is compared with.
const BOUNDS_MICROS: [u64; 8] = [
    50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A lock-free histogram over [`BOUNDS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// `slots[i]`: observations in `(BOUNDS[i-1], BOUNDS[i]]`; `slots[8]`: above `BOUNDS[7]`.
    slots: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

/// One scrape's reading: `(le label, cumulative count)` for each bound and `+Inf`, the sum
/// in seconds and the total count.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub buckets: Vec<(String, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

/// The `le` label of an upper bound as MinIO prints it (`fmt.Sprintf("%.3f", b)`).
pub fn le_label(bound: f64) -> String {
    if bound.is_infinite() {
        "+Inf".to_owned()
    } else {
        format!("{bound:.3}")
    }
}

fn slot_of(took: Duration) -> usize {
    let micros = took.as_micros();
    BOUNDS_MICROS
        .iter()
        .position(|b| micros <= u128::from(*b))
        .unwrap_or(BOUNDS.len())
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        self.slots[slot_of(took)].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The cumulative buckets as a scrape shows them. The count is the sum of the slots read,
    /// so `+Inf` always equals the count even while requests finish during the read.
    pub fn read(&self) -> Reading {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BOUNDS.len() + 1);
        for (i, slot) in self.slots.iter().enumerate() {
            cumulative += slot.load(Ordering::Relaxed);
            let bound = BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((le_label(bound), cumulative));
        }
        Reading {
            buckets,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: cumulative,
        }
    }

    /// Whether nothing was observed (such an API is left out of the exposition, as MinIO does).
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_are_minios() {
        let labels: Vec<String> = BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .map(le_label)
            .collect();
        assert_eq!(
            labels,
            [
                "0.050", "0.100", "0.250", "0.500", "1.000", "2.500", "5.000", "10.000", "+Inf"
            ]
        );
    }

    #[test]
    fn bounds_are_inclusive_and_cumulative() {
        let h = Histogram::default();
        assert!(h.is_empty());
        for ms in [0, 50, 51, 100, 999, 1000, 10_000, 10_001, 60_000] {
            h.observe(Duration::from_millis(ms));
        }
        let r = h.read();
        let counts: Vec<u64> = r.buckets.iter().map(|(_, n)| *n).collect();
        // <=0.05: 0 ms, 50 ms; <=0.1: +51, 100; <=1: +999, 1000; <=10: +10000; +Inf: +2.
        assert_eq!(counts, [2, 4, 4, 4, 6, 6, 6, 7, 9]);
        assert_eq!(r.count, 9);
        assert!((r.sum_seconds - 82.201).abs() < 1e-9, "{}", r.sum_seconds);
        assert!(!h.is_empty());
    }

    #[test]
    fn a_microsecond_over_a_bound_is_in_the_next_slot() {
        assert_eq!(slot_of(Duration::from_micros(50_000)), 0);
        assert_eq!(slot_of(Duration::from_micros(50_001)), 1);
        assert_eq!(slot_of(Duration::from_micros(10_000_000)), 7);
        assert_eq!(slot_of(Duration::from_micros(10_000_001)), 8);
    }
}

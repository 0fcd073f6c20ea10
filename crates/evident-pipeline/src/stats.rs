//! The pipeline's counters: what `GET /api/v1/stats/pipeline` and `/metrics` report.

use evident_model::Priority;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Running counters, updated by admission and the committer.
pub struct Stats {
    /// Events submitted to the pipeline (after validation).
    pub received: AtomicU64,
    /// Events committed (newly stored).
    pub processed: AtomicU64,
    /// Events whose id was already stored (retries).
    pub duplicates: AtomicU64,
    /// Events folded into an earlier equal event by deduplication.
    pub deduplicated: AtomicU64,
    /// Events not committed because the store failed.
    pub failed: AtomicU64,
    /// Events moved to the dead-letter table.
    pub dead_lettered: AtomicU64,
    /// Events refused because their priority's queue share was full.
    pub rejected_overloaded: AtomicU64,
    /// Events refused by validation (counted by the API layer).
    pub rejected_invalid: AtomicU64,
    /// Commits run.
    pub commits: AtomicU64,
    /// Time from queueing to commit, per priority, in microseconds.
    latency: [Mutex<Histogram<u64>>; 5],
}

impl Default for Stats {
    fn default() -> Self {
        let hist = || {
            Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 2)
                    .unwrap_or_else(|_| Histogram::new(2).unwrap_or_else(|_| unreachable!())),
            )
        };
        Self {
            received: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            rejected_overloaded: AtomicU64::new(0),
            rejected_invalid: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            latency: [hist(), hist(), hist(), hist(), hist()],
        }
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Stats {
    /// Records that `n` events of `priority` waited `waited` from queueing to commit.
    pub(crate) fn record_latency(&self, priority: Priority, waited: Duration, n: usize) {
        let mut h = self.latency[usize::from(priority.rank())]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        h.saturating_record_n(waited.as_micros() as u64, n as u64);
    }

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self, queued: [usize; 5], queued_bytes: usize) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut latency = Vec::new();
        for p in Priority::ALL.into_iter().rev() {
            let h = self.latency[usize::from(p.rank())]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            latency.push(LatencySnapshot {
                priority: p,
                count: h.len(),
                average_ms: h.mean() / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: h.max() as f64 / 1000.0,
            });
        }
        StatsSnapshot {
            received: get(&self.received),
            processed: get(&self.processed),
            duplicates: get(&self.duplicates),
            deduplicated: get(&self.deduplicated),
            failed: get(&self.failed),
            dead_lettered: get(&self.dead_lettered),
            rejected: Rejected {
                invalid: get(&self.rejected_invalid),
                overloaded: get(&self.rejected_overloaded),
            },
            commits: get(&self.commits),
            queue_size: Priority::ALL
                .into_iter()
                .rev()
                .map(|priority| Lane {
                    priority,
                    events: queued[usize::from(priority.rank())],
                })
                .collect(),
            queue_bytes: queued_bytes,
            processing_time: latency,
        }
    }
}

/// Refused events by reason.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// Failed validation.
    pub invalid: u64,
    /// Their priority's queue share was full (429).
    pub overloaded: u64,
}

/// Events queued in one priority lane.
#[derive(Debug, Clone, Serialize)]
pub struct Lane {
    /// The priority.
    pub priority: Priority,
    /// Events queued.
    pub events: usize,
}

/// Queue-to-commit time of one priority.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySnapshot {
    /// The priority.
    pub priority: Priority,
    /// Events measured.
    pub count: u64,
    /// Average, milliseconds.
    pub average_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Maximum, milliseconds.
    pub max_ms: f64,
}

/// The seed's `getStats()`, as evident reports it.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    /// Events submitted after validation.
    pub received: u64,
    /// Events newly committed.
    pub processed: u64,
    /// Events whose id was already stored.
    pub duplicates: u64,
    /// Events folded by deduplication.
    pub deduplicated: u64,
    /// Events the store failed to commit.
    pub failed: u64,
    /// Events moved to the dead-letter table.
    pub dead_lettered: u64,
    /// Events refused, by reason.
    pub rejected: Rejected,
    /// Commits run.
    pub commits: u64,
    /// Events queued per priority, most urgent first.
    pub queue_size: Vec<Lane>,
    /// Bytes queued.
    pub queue_bytes: usize,
    /// Queue-to-commit time per priority.
    pub processing_time: Vec<LatencySnapshot>,
}

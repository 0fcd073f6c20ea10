//! Metric names the pipeline records, in one place (label values come from closed sets).

/// Events submitted after validation.
pub const RECEIVED: &str = "evident_events_received_total";
/// Events newly committed.
pub const PROCESSED: &str = "evident_events_processed_total";
/// Events whose id was already stored.
pub const DUPLICATES: &str = "evident_events_duplicates_total";
/// Events folded by deduplication.
pub const DEDUPLICATED: &str = "evident_events_deduplicated_total";
/// Events the store failed to commit.
pub const FAILED: &str = "evident_events_failed_total";
/// Events moved to the dead-letter table.
pub const DEAD_LETTERED: &str = "evident_events_dead_lettered_total";
/// Events refused, labelled `reason` = `invalid` | `overloaded`.
pub const REJECTED: &str = "evident_events_rejected_total";
/// Commits run.
pub const COMMITS: &str = "evident_commits_total";
/// Events queued, labelled `priority`.
pub const QUEUE_EVENTS: &str = "evident_queue_events";
/// Bytes queued.
pub const QUEUE_BYTES: &str = "evident_queue_bytes";
/// Histogram: events per commit.
pub const COMMIT_BATCH_EVENTS: &str = "evident_commit_batch_events";
/// Histogram: seconds one commit (store transaction with fsync) takes.
pub const COMMIT_SECONDS: &str = "evident_commit_duration_seconds";
/// Histogram: seconds from queueing to commit, labelled `priority`.
pub const COMMIT_WAIT_SECONDS: &str = "evident_event_commit_wait_seconds";
/// Histogram: seconds an ingest request takes end to end (recorded by the API).
pub const INGEST_SECONDS: &str = "evident_ingest_duration_seconds";

/// Bucket bounds for the seconds histograms: 100 µs to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];
/// Bucket bounds for the batch-size histogram.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

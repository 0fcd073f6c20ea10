//! The detection stage: follows the committed stream, runs every event through the
//! rules, and records what fires as findings.
//!
//! The stage takes committed events in sequence order through an
//! [`evident_stream::Follower`]: from the committed stream's hub while it keeps up, else
//! back from the store, so it never misses one however far it falls behind, and resumes
//! where it stopped after a restart. Two positions are kept in the store:
//!
//! - `done_seq`, written in the same transaction as the findings: every event up to it
//!   has had its findings recorded, so none is recorded twice;
//! - the correlation state (open windows and counters) with the sequence number it is
//!   as of, saved every few seconds and at shutdown.
//!
//! On start the stage restores the state and runs the events after it again; those up
//! to `done_seq` only rebuild the windows (their findings are already stored), the
//! ones after are detected as usual. Windows run on event time, so replaying gives the
//! same answers as the first pass did.

use crate::rules::{Detector, Match};
use evident_model::{Event, Severity};
use evident_store::{FindingStore, Hit, StoreError};
use evident_stream::{Commits, CommittedLog, Follower};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Knobs of the detection stage.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Events taken at a time (from the hub or the store); their findings are recorded
    /// in one transaction, which waits for the commit running then, so a batch should
    /// cover about a commit's worth of events.
    pub batch: usize,
    /// How often the correlation state is saved (and always at shutdown). After a crash,
    /// the events since the last save are run again to rebuild the windows.
    pub save_state_every: Duration,
    /// How often the store is checked for events committed outside the pipeline
    /// (deduplication summaries, events moved from the critical journal).
    pub poll: Duration,
}

impl Default for StageConfig {
    fn default() -> Self {
        Self {
            batch: 10_000,
            save_state_every: Duration::from_secs(5),
            poll: Duration::from_secs(1),
        }
    }
}

/// What the stage has done, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct DetectionStats {
    /// Events run through the rules.
    pub events: AtomicU64,
    /// Rule firings recorded.
    pub hits: AtomicU64,
    /// The highest sequence number handled.
    pub seq: AtomicI64,
    /// Delays from the commit of a firing event to its finding being stored.
    latencies: Mutex<Vec<Duration>>,
}

/// Latency samples kept for [`DetectionStats::take_latencies`].
const MAX_SAMPLES: usize = 100_000;

impl DetectionStats {
    /// The commit-to-finding delays measured since the last call.
    pub fn take_latencies(&self) -> Vec<Duration> {
        std::mem::take(
            &mut *self
                .latencies
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn record_latency(&self, latency: Duration) {
        metrics::histogram!(FINDING_LATENCY).record(latency.as_secs_f64());
        let mut samples = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if samples.len() < MAX_SAMPLES {
            samples.push(latency);
        }
    }
}

/// Metric: seconds from an event's commit to its finding being stored.
pub const FINDING_LATENCY: &str = "evident_detection_finding_seconds";
/// Metric: events run through the rules.
pub const EVENTS_DETECTED: &str = "evident_detection_events_total";
/// Metric: open correlation windows and statistical series held in memory.
pub const STATE_ENTRIES: &str = "evident_detection_state_entries";
/// Metric: rule firings recorded into findings.
pub const HITS_RECORDED: &str = "evident_detection_hits_total";

/// Metric: committed events detection has not run yet.
pub const LAG_EVENTS: &str = "evident_detection_lag_events";
/// Metric: how long ago the oldest committed event detection has not run yet was
/// committed (0 when it is caught up).
pub const LAG_SECONDS: &str = "evident_detection_lag_seconds";

/// How far detection is behind the commits.
pub type DetectionLag = evident_stream::Lag;

/// Findings that one batch of detection opened or changed.
#[derive(Debug, Clone)]
pub struct FindingsChanged {
    /// The findings' ids.
    pub ids: Vec<Uuid>,
    /// The sequence number of the last event of the batch.
    pub seq: i64,
}

/// Changes held for a slow listener before it misses some.
const CHANGES_BUFFER: usize = 1024;

/// A running detection stage.
#[derive(Clone)]
pub struct DetectionHandle {
    replace: mpsc::UnboundedSender<Detector>,
    changed: broadcast::Sender<FindingsChanged>,
    stats: Arc<DetectionStats>,
    commits: Arc<Commits>,
}

impl DetectionHandle {
    /// Swaps in a new rule set; open correlation windows of rules it keeps carry over.
    pub fn replace_rules(&self, detector: Detector) {
        // The stage has stopped only when the service is shutting down.
        self.replace.send(detector).ok();
    }

    /// Tells of every finding detection opens or changes from now on (the live stream
    /// sends them to its subscribers).
    pub fn findings_changed(&self) -> broadcast::Receiver<FindingsChanged> {
        self.changed.subscribe()
    }

    /// What the stage has done so far.
    pub fn stats(&self) -> &Arc<DetectionStats> {
        &self.stats
    }

    /// How far detection is behind the commits right now.
    pub fn lag(&self) -> DetectionLag {
        self.commits
            .lag_after(self.stats.seq.load(Ordering::Relaxed))
    }
}

/// Starts the detection stage with `detector`, recording into `store`, following
/// `commits` and reading `log` for what the hub no longer holds. It ends once the
/// committed stream closes and everything committed has been detected.
pub fn start(
    store: Arc<dyn FindingStore>,
    log: Arc<dyn CommittedLog>,
    detector: Detector,
    commits: Arc<Commits>,
    config: StageConfig,
) -> (DetectionHandle, JoinHandle<()>) {
    let (replace, replacements) = mpsc::unbounded_channel();
    let stats = Arc::new(DetectionStats::default());
    let (changed, _) = broadcast::channel(CHANGES_BUFFER);
    let handle = DetectionHandle {
        replace,
        changed: changed.clone(),
        stats: stats.clone(),
        commits: commits.clone(),
    };
    let stage = Stage {
        store,
        log,
        detector,
        commits,
        config,
        stats: stats.clone(),
        replacements,
        changed,
    };
    // Rule evaluation is CPU work: it gets a thread of its own, as the commit stage does.
    let runtime = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || runtime.block_on(stage.run()));
    (handle, task)
}

struct Stage {
    store: Arc<dyn FindingStore>,
    log: Arc<dyn CommittedLog>,
    detector: Detector,
    commits: Arc<Commits>,
    config: StageConfig,
    stats: Arc<DetectionStats>,
    replacements: mpsc::UnboundedReceiver<Detector>,
    changed: broadcast::Sender<FindingsChanged>,
}

impl Stage {
    async fn run(mut self) {
        let checkpoint = retry("read the detection checkpoint", || {
            self.store.detection_checkpoint()
        })
        .await;
        let done = checkpoint.done_seq;
        let mut cursor = done;
        if let Some((seq, state)) = &checkpoint.state {
            match self.detector.restore_state(state) {
                Ok(()) => cursor = *seq,
                Err(reason) => {
                    tracing::warn!(%reason, "correlation windows start empty");
                }
            }
        }
        tracing::info!(
            from = cursor,
            replay_to = done,
            rules = self.detector.rule_count(),
            correlations = self.detector.correlation_count(),
            "detection stage started"
        );
        let mut saved = (cursor, Instant::now());
        let mut follower =
            Follower::new("detection", self.commits.clone(), self.log.clone(), cursor)
                .with_batch(self.config.batch)
                .with_poll(self.config.poll);
        loop {
            while let Ok(detector) = self.replacements.try_recv() {
                self.swap(detector);
            }
            // Whether the stream had closed before this read: then an empty read means
            // everything committed has been handed out.
            let closed = follower.closed();
            let batch = follower.read_retrying().await;
            if batch.is_empty() {
                if cursor != saved.0
                    && (closed || saved.1.elapsed() >= self.config.save_state_every)
                {
                    self.save_state(cursor).await;
                    saved = (cursor, Instant::now());
                }
                if closed {
                    break;
                }
                tokio::select! {
                    () = follower.wait() => {}
                    Some(detector) = self.replacements.recv() => self.swap(detector),
                }
                continue;
            }
            let last = batch.last().map_or(cursor, |e| e.seq);
            let mut hits = Vec::new();
            let mut firing_seqs = Vec::new();
            let mut n = 0;
            for committed in &batch {
                let before = hits.len();
                let event = &committed.encoded().event;
                n += u64::from(self.detect(event, committed.seq > done, &mut hits));
                if hits.len() > before {
                    firing_seqs.push(committed.seq);
                }
            }
            let hits = merge(hits);
            self.stats.events.fetch_add(n, Ordering::Relaxed);
            metrics::counter!(EVENTS_DETECTED).increment(n);
            if !hits.is_empty() {
                let count: u64 = hits.iter().map(|h| h.firings).sum();
                let ids = retry("record findings", || {
                    self.store.record_hits(hits.clone(), last)
                })
                .await;
                // Nobody listening: nothing to tell.
                self.changed.send(FindingsChanged { ids, seq: last }).ok();
                let now = Instant::now();
                for seq in firing_seqs {
                    if let Some(at) = self.commits.committed_at(seq) {
                        self.stats.record_latency(now.saturating_duration_since(at));
                    }
                }
                self.stats.hits.fetch_add(count, Ordering::Relaxed);
                metrics::counter!(HITS_RECORDED).increment(count);
            }
            cursor = last;
            self.stats.seq.store(cursor, Ordering::Relaxed);
            metrics::gauge!(STATE_ENTRIES).set(self.detector.state_entries() as f64);
            if saved.1.elapsed() >= self.config.save_state_every {
                self.save_state(cursor).await;
                saved = (cursor, Instant::now());
            }
        }
        tracing::debug!(seq = cursor, "detection stage stopped");
    }

    fn swap(&mut self, mut detector: Detector) {
        if let Err(reason) = detector.restore_state(&self.detector.save_state()) {
            tracing::warn!(%reason, "correlation windows restart empty with the new rules");
        }
        tracing::info!(
            rules = detector.rule_count(),
            correlations = detector.correlation_count(),
            "rules replaced"
        );
        self.detector = detector;
    }

    /// Runs one committed event through the rules; with `record`, adds its hits. Says
    /// whether the event was run: the log's records of the side tables (detection's
    /// own evidence links among them) are not.
    fn detect(&mut self, event: &Event, record: bool, hits: &mut Vec<Hit>) -> bool {
        if event.service_record && evident_model::service::is_side_record(&event.event_type) {
            return false;
        }
        let matches = self.detector.process_event(event);
        if !record {
            return true;
        }
        hits.extend(matches.into_iter().map(|m| hit(m, event)));
        true
    }

    async fn save_state(&self, seq: i64) {
        let state = self.detector.save_state();
        if let Err(error) = self.store.save_detection_state(seq, state).await {
            // Only costs a longer replay at the next start.
            tracing::warn!(%error, "correlation state not saved");
        }
    }
}

/// The finding-to-be of one match on `event`.
fn hit(m: Match, event: &Event) -> Hit {
    let mut events: Vec<Uuid> = m
        .events
        .iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect();
    if !events.contains(&event.id) {
        events.push(event.id);
    }
    let group_key = crate::rules::group_key(&m.group);
    Hit {
        rule_id: m.rule_id.unwrap_or_else(|| m.title.clone()),
        title: m.title,
        severity: m
            .level
            .as_deref()
            .and_then(Severity::parse_alias)
            .unwrap_or(Severity::Medium),
        group_key,
        tags: m.tags,
        facility: event.facility.clone(),
        events,
        firings: 1,
        first: event.time,
        last: event.time,
    }
}

/// Merges a batch's hits of the same rule and group into one (in first-seen order), so
/// a finding is updated once per batch however often its rule fired.
fn merge(hits: Vec<Hit>) -> Vec<Hit> {
    let mut merged: Vec<Hit> = Vec::with_capacity(hits.len());
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    for hit in hits {
        match at.entry((hit.rule_id.clone(), hit.group_key.clone())) {
            Entry::Occupied(slot) => {
                let into = &mut merged[*slot.get()];
                into.firings += hit.firings;
                into.first = into.first.min(hit.first);
                into.last = into.last.max(hit.last);
                into.severity = into.severity.max(hit.severity);
                for id in hit.events {
                    if !into.events.contains(&id) {
                        into.events.push(id);
                    }
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(merged.len());
                merged.push(hit);
            }
        }
    }
    merged
}

/// Runs `op` until it succeeds, pausing longer after each failure (the store is down:
/// detection waits for it rather than skip events or lose findings).
async fn retry<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(error) => {
                tracing::warn!(%error, "detection cannot {what}; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

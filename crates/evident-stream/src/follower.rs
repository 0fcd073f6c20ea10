//! A follower of the committed stream: one cursor, every event after it, in order.

use crate::hub::{Commits, CommittedEvent, Head, Lag};
use crate::log::{CommittedLog, LogError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Events handed out at a time unless told otherwise: about a commit's worth.
pub const DEFAULT_BATCH: usize = 10_000;
/// How often a waiting follower looks at the log even when the hub says nothing new:
/// events committed outside the pipeline's lanes (deduplication summaries, events moved
/// from the critical journal) wake no one.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// Longest pause between two tries of a failing log read.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Follows the committed stream from a cursor: takes events from the hub while it holds
/// them and from the log when it does not (after a restart, or when this follower fell
/// behind), so it hands out every committed event once, in sequence order, however far
/// behind it is.
pub struct Follower {
    hub: Arc<Commits>,
    log: Arc<dyn CommittedLog>,
    head: watch::Receiver<Head>,
    cursor: i64,
    batch: usize,
    poll: Duration,
    name: &'static str,
}

impl Follower {
    /// A follower named `name` (for the logs) that hands out the events after `cursor`.
    pub fn new(
        name: &'static str,
        hub: Arc<Commits>,
        log: Arc<dyn CommittedLog>,
        cursor: i64,
    ) -> Self {
        Self {
            head: hub.subscribe(),
            hub,
            log,
            cursor,
            batch: DEFAULT_BATCH,
            poll: DEFAULT_POLL,
            name,
        }
    }

    /// Hands out at most `batch` events at a time.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Looks at the log at least this often while waiting.
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The sequence number of the last event handed out (where it started, before any).
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Moves the cursor forward to `seq` without reading what lies between (for a
    /// consumer with nobody to hand those events to). Never moves it back.
    pub fn skip_to(&mut self, seq: i64) {
        self.cursor = self.cursor.max(seq);
    }

    /// The hub it follows.
    pub fn hub(&self) -> &Arc<Commits> {
        &self.hub
    }

    /// How far this follower is behind the commits.
    pub fn lag(&self) -> Lag {
        self.hub.lag_after(self.cursor)
    }

    /// Whether the stream has closed: nothing more will be committed.
    pub fn closed(&self) -> bool {
        self.head.borrow().closed
    }

    /// The next events after the cursor, at most the batch size, and moves the cursor past
    /// them; empty when there is nothing newer. One read of the log at most.
    pub async fn read(&mut self) -> Result<Vec<CommittedEvent>, LogError> {
        let events = match self.hub.events_after(self.cursor, self.batch) {
            Some(held) => held,
            None => self.log.committed_after(self.cursor, self.batch).await?,
        };
        if let Some(last) = events.last() {
            self.cursor = last.seq;
        }
        Ok(events)
    }

    /// [`Follower::read`], trying again with growing pauses while the log fails: a
    /// follower waits for the store rather than skip events.
    pub async fn read_retrying(&mut self) -> Vec<CommittedEvent> {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.read().await {
                Ok(events) => return events,
                Err(error) => {
                    tracing::warn!(follower = self.name, %error, "retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
    }

    /// Waits until more is committed, the stream closes, or the poll interval passes.
    pub async fn wait(&mut self) {
        tokio::select! {
            changed = self.head.changed() => {
                if changed.is_err() {
                    // The hub is gone with the pipeline: poll until told to stop.
                    tokio::time::sleep(self.poll).await;
                }
            }
            _ = tokio::time::sleep(self.poll) => {}
        }
    }

    /// The next non-empty batch, waiting for one; `None` once the stream has closed and
    /// everything committed has been handed out.
    pub async fn next(&mut self) -> Option<Vec<CommittedEvent>> {
        loop {
            // Read the closed flag first: a commit made before the close is still read.
            let closed = self.closed();
            let events = self.read_retrying().await;
            if !events.is_empty() {
                return Some(events);
            }
            if closed {
                return None;
            }
            self.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use evident_model::EncodedEvent;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// A log over a list, failing its first `failures` reads.
    struct ListLog {
        events: Mutex<Vec<i64>>,
        failures: AtomicUsize,
        reads: AtomicUsize,
    }

    impl ListLog {
        fn new(seqs: impl IntoIterator<Item = i64>, failures: usize) -> Arc<Self> {
            Arc::new(Self {
                events: Mutex::new(seqs.into_iter().collect()),
                failures: AtomicUsize::new(failures),
                reads: AtomicUsize::new(0),
            })
        }
    }

    #[async_trait]
    impl CommittedLog for ListLog {
        async fn committed_after(
            &self,
            seq: i64,
            limit: usize,
        ) -> Result<Vec<CommittedEvent>, LogError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(LogError {
                    after: seq,
                    reason: "store down".into(),
                });
            }
            let events = self.events.lock().unwrap().clone();
            Ok(events
                .into_iter()
                .filter(|&s| s > seq)
                .take(limit)
                .map(|s| CommittedEvent::new(s, encoded(s)))
                .collect())
        }

        async fn last_seq(&self) -> Result<i64, LogError> {
            Ok(self.events.lock().unwrap().last().copied().unwrap_or(0))
        }
    }

    fn encoded(seq: i64) -> EncodedEvent {
        let event = serde_json::from_str(
            r#"{"id":"0194f1e2-0000-7000-8000-000000000000","time":"2026-01-01T00:00:00Z",
                "received_at":"2026-01-01T00:00:00Z","type":"a.b","category":"custom",
                "severity":"info","priority":"info","outcome":"unknown"}"#,
        )
        .unwrap();
        EncodedEvent {
            event,
            bytes: format!("event {seq}").into_bytes(),
        }
    }

    fn seqs(events: &[CommittedEvent]) -> Vec<i64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn a_follower_behind_the_hub_reads_the_log_then_the_hub_without_a_gap() {
        let hub = Arc::new(Commits::default());
        // 1..=5 are only in the store (committed before a restart); 6..=8 are in the hub.
        let log = ListLog::new(1..=8, 0);
        let held: Vec<EncodedEvent> = (6..=8).map(encoded).collect();
        hub.record_batch(held.into(), vec![6, 7, 8], Instant::now());
        let mut follower = Follower::new("test", hub.clone(), log.clone(), 0).with_batch(3);
        assert_eq!(seqs(&follower.next().await.unwrap()), [1, 2, 3]);
        // The hub does not hold 4: the log gives a whole batch.
        assert_eq!(seqs(&follower.next().await.unwrap()), [4, 5, 6]);
        let reads = log.reads.load(Ordering::SeqCst);
        let from_hub = follower.next().await.unwrap();
        assert_eq!(seqs(&from_hub), [7, 8]);
        assert_eq!(from_hub[0].encoded().bytes, b"event 7");
        assert_eq!(
            log.reads.load(Ordering::SeqCst),
            reads,
            "the hub held them: no read of the log"
        );
        assert_eq!(follower.cursor(), 8);
        assert_eq!(follower.lag().events, 0);
        hub.close();
        assert!(follower.next().await.is_none(), "closed and drained");
    }

    #[tokio::test]
    async fn a_failing_log_is_read_again_and_nothing_is_skipped() {
        let hub = Arc::new(Commits::default());
        let log = ListLog::new(1..=3, 2);
        hub.record(3, Instant::now());
        let mut follower = Follower::new("test", hub, log.clone(), 0);
        assert!(follower.read().await.is_err());
        assert_eq!(follower.cursor(), 0, "a failed read moves nothing");
        assert_eq!(seqs(&follower.next().await.unwrap()), [1, 2, 3]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_waiting_follower_wakes_on_a_commit() {
        let hub = Arc::new(Commits::default());
        let log = ListLog::new([], 0);
        let mut follower =
            Follower::new("test", hub.clone(), log, 0).with_poll(Duration::from_secs(60));
        let waiter = tokio::spawn(async move { follower.next().await.map(|e| seqs(&e)) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        hub.record_batch(vec![encoded(1)].into(), vec![1], Instant::now());
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the commit, not the 60 s poll")
            .unwrap();
        assert_eq!(got, Some(vec![1]));
    }

    #[tokio::test]
    async fn lag_counts_the_events_not_handed_out() {
        let hub = Arc::new(Commits::default());
        let log = ListLog::new(1..=10, 0);
        hub.record(10, Instant::now());
        let mut follower = Follower::new("test", hub, log, 0).with_batch(4);
        assert_eq!(follower.lag().events, 10);
        follower.next().await.unwrap();
        assert_eq!(follower.lag().events, 6);
        assert!(follower.lag().seconds >= 0.0);
    }
}

//! The hub of the committed stream: where the commit stage says what it committed.
//!
//! The store is the stream: every committed event has its sequence number, and a
//! follower reads events after the last one it handled. This hub says when there is
//! something new (the highest sequence number committed, through a watch channel), when
//! each recent commit happened (so a follower can tell its delay after the commit), and
//! keeps the last few thousand committed events in memory, so a follower that keeps up
//! takes them from here instead of reading them back from the store. A follower that
//! falls behind, or events committed outside the pipeline's lanes, are read from the
//! store (the [`crate::CommittedLog`]): nothing is lost either way.

use evident_model::EncodedEvent;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::watch;

/// Commits remembered for [`Commits::committed_at`].
const RECENT: usize = 4096;
/// Committed events kept in memory for followers (older ones are read from the store):
/// about two commits of the biggest size. They are memory outside the queue's bounds,
/// so no more.
const RECENT_EVENTS: usize = 16_384;

/// Where the committed stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    /// Highest sequence number committed by the pipeline (0 before the first commit).
    pub seq: i64,
    /// True once the pipeline has stopped: nothing more will be committed.
    pub closed: bool,
}

/// How far a follower is behind the commits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Committed events not handled yet.
    pub events: i64,
    /// Age of the oldest of them, from its commit (at least this old when its commit is
    /// too old to be remembered); 0 when caught up.
    pub seconds: f64,
}

/// One committed event as a follower gets it: its sequence number and the event, shared
/// with the commit that stored it (nothing is copied or parsed again).
#[derive(Clone)]
pub struct CommittedEvent {
    /// The event's commit sequence number.
    pub seq: i64,
    batch: Arc<[EncodedEvent]>,
    at: usize,
}

impl CommittedEvent {
    /// An event on its own, as read back from the store.
    pub fn new(seq: i64, event: EncodedEvent) -> Self {
        Self {
            seq,
            batch: Arc::from(vec![event]),
            at: 0,
        }
    }

    /// The event with its canonical bytes.
    pub fn encoded(&self) -> &EncodedEvent {
        &self.batch[self.at]
    }
}

impl std::fmt::Debug for CommittedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommittedEvent")
            .field("seq", &self.seq)
            .field("id", &self.encoded().event.id)
            .finish()
    }
}

/// One commit's events and the sequence number each got (0: not stored, a duplicate).
struct Batch {
    events: Arc<[EncodedEvent]>,
    seqs: Vec<i64>,
}

#[derive(Default)]
struct Recent {
    /// `(last sequence number, when)` per commit, oldest first.
    times: VecDeque<(i64, Instant)>,
    /// The last commits' events, oldest first, about [`RECENT_EVENTS`] in all.
    batches: VecDeque<Batch>,
    events: usize,
    /// Commits let go of, freed by the next follower that reads (freeing thousands of
    /// events is work the commit stage should not wait for), with their event count.
    retired: Vec<Batch>,
    retired_events: usize,
}

impl Recent {
    fn take_retired(&mut self) -> Vec<Batch> {
        self.retired_events = 0;
        std::mem::take(&mut self.retired)
    }
}

/// The committed stream's hub; shared by the commit stage and its followers.
pub struct Commits {
    head: watch::Sender<Head>,
    recent: Mutex<Recent>,
}

impl Default for Commits {
    fn default() -> Self {
        Self {
            head: watch::Sender::new(Head::default()),
            recent: Mutex::new(Recent::default()),
        }
    }
}

impl Commits {
    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that events up to `seq` were committed at `at`.
    pub fn record(&self, seq: i64, at: Instant) {
        {
            let mut recent = self.recent();
            if recent.times.len() == RECENT {
                recent.times.pop_front();
            }
            recent.times.push_back((seq, at));
        }
        self.head.send_modify(|head| head.seq = head.seq.max(seq));
    }

    /// Records a commit of the pipeline: `events`, the sequence number each got (0 for
    /// one not stored), committed at `at`.
    pub fn record_batch(&self, events: Arc<[EncodedEvent]>, seqs: Vec<i64>, at: Instant) {
        let Some(&last) = seqs.iter().max() else {
            return;
        };
        if last <= 0 {
            return;
        }
        let unclaimed = {
            let mut recent = self.recent();
            recent.events += events.len();
            recent.batches.push_back(Batch { events, seqs });
            while recent.events > RECENT_EVENTS && recent.batches.len() > 1 {
                if let Some(old) = recent.batches.pop_front() {
                    recent.events -= old.events.len();
                    recent.retired_events += old.events.len();
                    recent.retired.push(old);
                }
            }
            // No follower came to free them soon: free them here after all.
            (recent.retired_events > RECENT_EVENTS / 4).then(|| recent.take_retired())
        };
        drop(unclaimed);
        self.record(last, at);
    }

    /// The committed events right after `seq`, in order, at most `limit`, if they are
    /// still held here. `None` when the event after `seq` is not (then read the store).
    pub fn events_after(&self, seq: i64, limit: usize) -> Option<Vec<CommittedEvent>> {
        let retired = self.recent().take_retired();
        drop(retired);
        let recent = self.recent();
        let mut out = Vec::new();
        let mut next = seq + 1;
        for batch in &recent.batches {
            if batch.seqs.iter().all(|&s| s < next) {
                continue;
            }
            for (at, &s) in batch.seqs.iter().enumerate() {
                if s < next {
                    continue;
                }
                if s != next || out.len() == limit {
                    return (!out.is_empty()).then_some(out);
                }
                out.push(CommittedEvent {
                    seq: s,
                    batch: batch.events.clone(),
                    at,
                });
                next += 1;
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Marks the stream closed (the pipeline has drained and stopped).
    pub fn close(&self) {
        self.head.send_modify(|head| head.closed = true);
    }

    /// Where the stream stands now.
    pub fn head(&self) -> Head {
        *self.head.borrow()
    }

    /// A receiver that wakes whenever more is committed or the stream closes.
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        self.head.subscribe()
    }

    /// When the oldest commit still remembered happened.
    pub fn oldest_commit(&self) -> Option<Instant> {
        self.recent().times.front().map(|(_, at)| *at)
    }

    /// How far a follower that has handled every event up to `done` is behind.
    pub fn lag_after(&self, done: i64) -> Lag {
        let events = (self.head().seq - done).max(0);
        let seconds = if events == 0 {
            0.0
        } else {
            self.committed_at(done + 1)
                .or_else(|| self.oldest_commit())
                .map_or(0.0, |at| at.elapsed().as_secs_f64())
        };
        Lag { events, seconds }
    }

    /// When the event with sequence number `seq` was committed, if that was recent.
    pub fn committed_at(&self, seq: i64) -> Option<Instant> {
        let recent = self.recent();
        let i = recent.times.partition_point(|(last, _)| *last < seq);
        recent.times.get(i).map(|(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn commit_times_are_found_by_any_sequence_number_of_the_commit() {
        let commits = Commits::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        commits.record(10, t0);
        commits.record(25, t1);
        assert_eq!(commits.committed_at(1), Some(t0));
        assert_eq!(commits.committed_at(10), Some(t0));
        assert_eq!(commits.committed_at(11), Some(t1));
        assert_eq!(commits.committed_at(25), Some(t1));
        assert_eq!(commits.committed_at(26), None);
        assert_eq!(commits.subscribe().borrow().seq, 25);
    }

    fn events(n: usize) -> Arc<[EncodedEvent]> {
        (0..n)
            .map(|i| {
                let mut e = evident_model::EncodedEvent::new(sample());
                e.bytes = format!("event {i}").into_bytes();
                e
            })
            .collect::<Vec<_>>()
            .into()
    }

    fn sample() -> evident_model::Event {
        serde_json::from_str(
            r#"{"id":"0194f1e2-0000-7000-8000-000000000000","time":"2026-01-01T00:00:00Z",
                "received_at":"2026-01-01T00:00:00Z","type":"a.b","category":"custom",
                "severity":"info","priority":"info","outcome":"unknown"}"#,
        )
        .unwrap()
    }

    #[test]
    fn recent_events_are_handed_out_in_order_until_a_gap() {
        let commits = Commits::default();
        let now = Instant::now();
        // Seqs 1..=3 with a duplicate in the middle (0), then 4..=5.
        commits.record_batch(events(4), vec![1, 0, 2, 3], now);
        commits.record_batch(events(2), vec![4, 5], now);
        let got = commits.events_after(0, 100).unwrap();
        let seqs: Vec<i64> = got.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert_eq!(
            got[1].encoded().bytes,
            b"event 2",
            "the duplicate is skipped"
        );
        assert_eq!(
            commits
                .events_after(2, 2)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            [3, 4]
        );
        assert!(commits.events_after(5, 100).is_none(), "nothing newer held");
        // A summary committed outside the lanes (seq 6) is not held: after 5, read the store.
        commits.record(6, now);
        commits.record_batch(events(1), vec![7], now);
        assert!(commits.events_after(5, 100).is_none());
        assert_eq!(commits.events_after(6, 100).unwrap()[0].seq, 7);
    }

    #[test]
    fn only_the_last_events_are_held() {
        let commits = Commits::default();
        let now = Instant::now();
        let mut seq = 0;
        for _ in 0..(RECENT_EVENTS / 100 + 5) {
            let seqs: Vec<i64> = (0..100)
                .map(|_| {
                    seq += 1;
                    seq
                })
                .collect();
            commits.record_batch(events(100), seqs, now);
        }
        assert!(
            commits.events_after(0, 10).is_none(),
            "the oldest were let go"
        );
        assert!(commits.recent().events <= RECENT_EVENTS);
        assert_eq!(commits.events_after(seq - 1, 10).unwrap()[0].seq, seq);
    }

    #[tokio::test]
    async fn followers_wake_on_commits_and_on_close() {
        let commits = Commits::default();
        let mut rx = commits.subscribe();
        commits.record(3, Instant::now());
        rx.changed().await.unwrap();
        assert_eq!(
            *rx.borrow_and_update(),
            Head {
                seq: 3,
                closed: false
            }
        );
        commits.close();
        rx.changed().await.unwrap();
        assert!(rx.borrow().closed);
    }
}

//! The live stream's fan-out: one follower of the committed stream, and every
//! subscriber's messages from it.
//!
//! One task follows the committed stream from where the store stands at start and puts
//! each event on a broadcast ring; findings detection records (and status changes people
//! make) go on the same ring. Each subscriber reads the ring at its own pace. The ring is
//! bounded: a subscriber that falls a whole ring behind is told how many messages it
//! missed (and can resume from the store by sequence number) while the fan-out, the other
//! subscribers and ingest carry on. Nothing here waits for a subscriber.
//!
//! With no subscriber the fan-out reads nothing: it moves its cursor to the newest
//! commit each time the hub says something was committed, so a service nobody watches
//! pays nothing for its live stream. A subscriber that joins gets every message after
//! the position it was given (both decided under one lock with the skip).

use crate::follower::Follower;
use crate::hub::CommittedEvent;
use evident_model::Severity;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Instant, SystemTime};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// Messages a subscriber may fall behind before it is told it missed some.
pub const DEFAULT_BUFFER: usize = 8192;

/// Metric: live stream subscribers connected now.
pub const SUBSCRIBERS: &str = "evident_stream_subscribers";
/// Metric: messages sent to subscribers (events, findings, heartbeats, notices).
pub const MESSAGES_SENT: &str = "evident_stream_messages_total";
/// Metric: messages subscribers missed because they read too slowly.
pub const MESSAGES_MISSED: &str = "evident_stream_missed_total";
/// Metric: subscribers closed because a send to them stalled.
pub const CLOSED_SLOW: &str = "evident_stream_closed_slow_total";

/// A committed event on the ring, with the texts subscribers get of it, made once for
/// all of them.
pub struct LiveEvent {
    /// The event and its sequence number.
    pub committed: CommittedEvent,
    /// When its commit happened, by the wall clock, if the hub still knew (events read
    /// back from the store do not say).
    pub committed_at: Option<SystemTime>,
    texts: [OnceLock<Arc<str>>; 2],
}

impl LiveEvent {
    /// The event's sequence number.
    pub fn seq(&self) -> i64 {
        self.committed.seq
    }

    /// The message text of view `view` (0 or 1: say, without and with personal data),
    /// made by `make` the first time any subscriber asks.
    pub fn text(&self, view: usize, make: impl FnOnce(&CommittedEvent) -> String) -> Arc<str> {
        self.texts[view.min(1)]
            .get_or_init(|| Arc::from(make(&self.committed)))
            .clone()
    }
}

impl From<CommittedEvent> for LiveEvent {
    fn from(committed: CommittedEvent) -> Self {
        Self {
            committed,
            committed_at: None,
            texts: Default::default(),
        }
    }
}

/// A finding that was opened or changed, as subscribers get it.
#[derive(Debug, Clone)]
pub struct FindingNote {
    /// The commit sequence number detection had reached (or the stream's head, for a
    /// change a person made).
    pub seq: i64,
    /// The finding's severity, for severity filters.
    pub severity: Severity,
    /// The finding's facility, for scopes and facility filters.
    pub facility: Option<String>,
    /// The finding as the API shows it to readers without the personal-data permission.
    pub finding: serde_json::Value,
    /// The finding as the API shows it to readers with that permission (clear values in
    /// its group key), when it differs.
    pub revealed: Option<serde_json::Value>,
}

/// One message on the ring.
#[derive(Clone)]
pub enum LiveItem {
    /// A committed event.
    Event(Arc<LiveEvent>),
    /// A finding opened or changed.
    Finding(Arc<FindingNote>),
}

impl LiveItem {
    /// The commit sequence number the message carries.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Event(e) => e.seq(),
            Self::Finding(f) => f.seq,
        }
    }
}

/// The fan-out; shared by the API's stream routes and whatever publishes findings.
pub struct Live {
    hub: Arc<crate::hub::Commits>,
    ring: broadcast::Sender<LiveItem>,
    sent: AtomicI64,
    stopped: watch::Sender<bool>,
    /// Held while the fan-out sends or skips, and while a subscriber joins: a new
    /// subscriber's position and the messages it gets agree.
    gate: Mutex<()>,
}

impl Live {
    /// Starts the fan-out over `follower` (which should start where the store stands:
    /// subscribers who want older events read them from the store), with a ring of
    /// `buffer` messages. The task ends when the committed stream closes.
    pub fn start(follower: Follower, buffer: usize) -> (Arc<Self>, JoinHandle<()>) {
        let (ring, _) = broadcast::channel(buffer.max(16));
        let live = Arc::new(Self {
            hub: follower.hub().clone(),
            ring,
            sent: AtomicI64::new(follower.cursor()),
            stopped: watch::Sender::new(false),
            gate: Mutex::new(()),
        });
        let task = tokio::spawn(fan_out(live.clone(), follower));
        (live, task)
    }

    /// A new subscriber's place on the ring, and the sequence number of the last event
    /// before it: the subscriber gets every message after that.
    pub fn subscribe(&self) -> (broadcast::Receiver<LiveItem>, i64) {
        let _gate = self.gate();
        (self.ring.subscribe(), self.position())
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether anyone is subscribed now.
    pub fn watched(&self) -> bool {
        self.ring.receiver_count() > 0
    }

    /// The highest sequence number committed (perhaps not on the ring yet).
    pub fn committed(&self) -> i64 {
        self.hub.head().seq
    }

    /// The sequence number of the last event put on the ring.
    pub fn position(&self) -> i64 {
        self.sent.load(Ordering::Acquire)
    }

    /// Becomes true once the committed stream has closed and every event is on the ring:
    /// subscribers then end their sessions.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stopped.subscribe()
    }

    /// Tells every subscriber that the service is stopping: their sessions end (after
    /// what is already on the ring), so their connections close and the server can stop.
    /// The fan-out itself runs on until the committed stream closes.
    pub fn close_subscribers(&self) {
        self.stopped.send_replace(true);
    }

    /// With no subscriber, moves `follower` and the position to the newest commit
    /// without reading anything, and says so.
    fn skip_unwatched(&self, follower: &mut Follower) -> bool {
        let _gate = self.gate();
        if self.ring.receiver_count() > 0 {
            return false;
        }
        let head = self.hub.head().seq;
        follower.skip_to(head);
        self.sent.fetch_max(follower.cursor(), Ordering::AcqRel);
        true
    }

    /// Puts committed events on the ring.
    fn send(&self, events: Vec<CommittedEvent>) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let _gate = self.gate();
        for committed in events {
            let seq = committed.seq;
            let mut event = LiveEvent::from(committed);
            event.committed_at = self
                .hub
                .committed_at(seq)
                .map(|at| wall - now.saturating_duration_since(at));
            // Sent to whoever subscribes; with nobody left it is simply dropped.
            self.ring.send(LiveItem::Event(Arc::new(event))).ok();
            self.sent.store(seq, Ordering::Release);
        }
    }

    /// Puts a finding on the ring.
    pub fn publish_finding(&self, note: FindingNote) {
        // No subscriber: nobody to tell.
        self.ring.send(LiveItem::Finding(Arc::new(note))).ok();
    }
}

async fn fan_out(live: Arc<Live>, mut follower: Follower) {
    loop {
        // Read the closed flag first: a commit made before the close is still handed out.
        let closed = follower.closed();
        if !live.skip_unwatched(&mut follower) {
            let events = follower.read_retrying().await;
            if !events.is_empty() {
                live.send(events);
                continue;
            }
        }
        if closed {
            break;
        }
        follower.wait().await;
    }
    live.stopped.send_replace(true);
    tracing::debug!("live stream fan-out stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Commits;
    use crate::log::{CommittedLog, LogError};
    use async_trait::async_trait;
    use evident_model::EncodedEvent;
    use std::time::{Duration, Instant};

    struct NoLog;

    #[async_trait]
    impl CommittedLog for NoLog {
        async fn committed_after(
            &self,
            _seq: i64,
            _limit: usize,
        ) -> Result<Vec<CommittedEvent>, LogError> {
            Ok(Vec::new())
        }

        async fn last_seq(&self) -> Result<i64, LogError> {
            Ok(0)
        }
    }

    fn encoded() -> EncodedEvent {
        EncodedEvent::new(
            serde_json::from_str(
                r#"{"id":"0194f1e2-0000-7000-8000-000000000000","time":"2026-01-01T00:00:00Z",
                "received_at":"2026-01-01T00:00:00Z","type":"a.b","category":"custom",
                "severity":"info","priority":"info","outcome":"unknown"}"#,
            )
            .unwrap(),
        )
    }

    async fn recv(rx: &mut broadcast::Receiver<LiveItem>) -> Result<i64, u64> {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a message within 5 s")
        {
            Ok(item) => Ok(item.seq()),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(n),
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_each_commit_in_order_and_a_slow_one_is_told_what_it_missed() {
        let hub = Arc::new(Commits::default());
        let follower = Follower::new("live", hub.clone(), Arc::new(NoLog), 0);
        let (live, task) = Live::start(follower, 16);
        let (mut fast, at) = live.subscribe();
        let (mut slow, _) = live.subscribe();
        assert_eq!(at, 0);
        let mut seq = 0;
        let mut expected = 0;
        for _ in 0..5 {
            let seqs: Vec<i64> = (0..8)
                .map(|_| {
                    seq += 1;
                    seq
                })
                .collect();
            hub.record_batch(vec![encoded(); 8].into(), seqs, Instant::now());
            for _ in 0..8 {
                expected += 1;
                assert_eq!(recv(&mut fast).await, Ok(expected), "in commit order");
            }
        }
        assert_eq!(live.position(), 40);
        // 40 sent, the ring holds 16: the slow one missed 24 and goes on from 25.
        assert_eq!(recv(&mut slow).await, Err(24));
        assert_eq!(recv(&mut slow).await, Ok(25));
        live.publish_finding(FindingNote {
            seq: 40,
            severity: Severity::High,
            facility: None,
            finding: serde_json::json!({"id": "f"}),
            revealed: None,
        });
        assert_eq!(recv(&mut fast).await, Ok(40));
        let mut stopped = live.stopped();
        hub.close();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the fan-out stops with the stream")
            .unwrap();
        assert!(
            *stopped.borrow_and_update(),
            "subscribers are told it stopped"
        );
    }

    /// Reads one batch of 8 events into the hub after `seq`.
    fn commit_eight(hub: &Commits, seq: &mut i64) {
        let seqs: Vec<i64> = (0..8)
            .map(|_| {
                *seq += 1;
                *seq
            })
            .collect();
        hub.record_batch(vec![encoded(); 8].into(), seqs, Instant::now());
    }

    /// Waits until the fan-out's position reaches `seq`.
    async fn position_reaches(live: &Live, seq: i64) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while live.position() < seq {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the fan-out keeps up");
    }

    /// A log that counts what is read from it.
    struct CountingLog(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl CommittedLog for CountingLog {
        async fn committed_after(
            &self,
            _seq: i64,
            _limit: usize,
        ) -> Result<Vec<CommittedEvent>, LogError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(Vec::new())
        }

        async fn last_seq(&self) -> Result<i64, LogError> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn nobody_watching_costs_no_reads_and_a_late_subscriber_starts_at_the_head() {
        let hub = Arc::new(Commits::default());
        let log = Arc::new(CountingLog(Default::default()));
        // A fan-out that read the stream would look at the log each time it caught up
        // with the hub; one that skips reads nothing at all.
        let follower = Follower::new("live", hub.clone(), log.clone(), 0);
        let (live, _task) = Live::start(follower, 16);
        let mut seq = 0;
        for _ in 0..5 {
            commit_eight(&hub, &mut seq);
        }
        position_reaches(&live, 40).await;
        assert_eq!(log.0.load(Ordering::Relaxed), 0, "nothing was read");
        let (mut late, at) = live.subscribe();
        assert_eq!(at, 40, "it joins where the stream stands");
        commit_eight(&hub, &mut seq);
        for expected in 41..=48 {
            assert_eq!(recv(&mut late).await, Ok(expected));
        }
        // When it leaves, the fan-out skips again (a read of the log it had begun
        // while subscribed may still finish).
        drop(late);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reads = log.0.load(Ordering::Relaxed);
        for _ in 0..5 {
            commit_eight(&hub, &mut seq);
        }
        position_reaches(&live, 88).await;
        assert_eq!(
            log.0.load(Ordering::Relaxed),
            reads,
            "nothing more was read"
        );
    }

    #[test]
    fn an_events_text_is_made_once_per_view() {
        let event = LiveEvent::from(CommittedEvent::new(7, encoded()));
        let mut made = 0;
        for _ in 0..3 {
            event.text(0, |c| {
                made += 1;
                format!("plain {}", c.seq)
            });
        }
        assert_eq!(made, 1);
        assert_eq!(&*event.text(1, |c| format!("open {}", c.seq)), "open 7");
        assert_eq!(&*event.text(0, |_| unreachable!()), "plain 7");
    }
}

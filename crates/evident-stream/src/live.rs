//! The live stream's fan-out: one follower of the committed stream, and every
//! subscriber's messages from it.
//!
//! One task follows the committed stream from where the store stands at start and puts
//! each event on a broadcast ring; findings detection records (and status changes people
//! make) go on the same ring. Each subscriber reads the ring at its own pace. The ring is
//! bounded: a subscriber that falls a whole ring behind is told how many messages it
//! missed (and can resume from the store by sequence number) while the fan-out, the other
//! subscribers and ingest carry on. Nothing here waits for a subscriber.

use crate::follower::Follower;
use crate::hub::CommittedEvent;
use evident_model::Severity;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
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
        });
        let task = tokio::spawn(fan_out(live.clone(), follower));
        (live, task)
    }

    /// A new subscriber's place on the ring: it gets every message sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveItem> {
        self.ring.subscribe()
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

    /// Puts a finding on the ring.
    pub fn publish_finding(&self, note: FindingNote) {
        // No subscriber: nobody to tell.
        self.ring.send(LiveItem::Finding(Arc::new(note))).ok();
    }
}

async fn fan_out(live: Arc<Live>, mut follower: Follower) {
    while let Some(events) = follower.next().await {
        let (now, wall) = (Instant::now(), SystemTime::now());
        for committed in events {
            let seq = committed.seq;
            let mut event = LiveEvent::from(committed);
            event.committed_at = live
                .hub
                .committed_at(seq)
                .map(|at| wall - now.saturating_duration_since(at));
            live.ring.send(LiveItem::Event(Arc::new(event))).ok();
            live.sent.store(seq, Ordering::Release);
        }
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
        let mut fast = live.subscribe();
        let mut slow = live.subscribe();
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

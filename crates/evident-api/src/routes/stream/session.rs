//! One subscriber's session, whatever carries it (WebSocket or SSE): which messages it
//! gets, in what order, and what happens when it reads too slowly.
//!
//! The session first replays from the store what the subscriber asked to resume
//! (`since_seq`, `Last-Event-ID`), then follows the live ring. Every message passes the
//! subscriber's scope and filter and goes into a bounded queue that the transport
//! drains. When the queue is full the subscriber is too slow: messages are counted as
//! missed, and once there is room it gets one `lagged` message saying how many and from
//! which sequence number to resume. A subscriber that stays full past the send timeout
//! is closed with that reason. A session that falls a whole ring behind (its subscriber
//! reads slowly, or the machine is busy) is told the same way: reading the gap back from
//! the store for every slow session would take the machine from ingest. Only a session
//! that is still catching up from the store, because its subscriber asked to resume,
//! reads such a gap from the store.

use evident_store::Scope;
use evident_stream::live::{CLOSED_SLOW, MESSAGES_MISSED, MESSAGES_SENT};
use evident_stream::{CommittedLog, Filter, Live, LiveItem};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{broadcast, mpsc, watch};

/// Why sessions end when the service stops.
const SHUTTING_DOWN: &str = "the service is shutting down";

/// Events read from the store at a time while replaying.
const REPLAY_BATCH: usize = 1000;

/// The knobs of every session.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// How often a `heartbeat` is sent.
    pub heartbeat: Duration,
    /// Messages queued for one subscriber before it counts as too slow.
    pub client_buffer: usize,
    /// How long a subscriber may stay too slow (or a send to it may stall) before it is
    /// closed.
    pub send_timeout: Duration,
    /// Subscribers connected at once at most; past it a new one is refused (503). An open
    /// stream holds a connection and a file descriptor for as long as it lasts.
    pub max_subscribers: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            client_buffer: 1024,
            send_timeout: Duration::from_secs(10),
            max_subscribers: 1000,
        }
    }
}

/// One message for the transport: its type, the sequence number it carries, and its
/// JSON text.
#[derive(Debug, Clone)]
pub struct Out {
    /// `security_event`, `finding`, `lagged`, `heartbeat`, ...
    pub kind: &'static str,
    /// The commit sequence number.
    pub seq: i64,
    /// The whole message as JSON.
    pub text: Arc<str>,
}

/// What a session sees: who asks, and how.
pub struct Subscriber {
    /// The facilities the caller's key may see.
    pub scope: Scope,
    /// Index of the caller's view of personal data (see [`View`](crate::privacy::View)).
    pub view: usize,
    /// Renders a sealed event for this caller's view.
    pub show: Arc<dyn Fn(&mut Value) + Send + Sync>,
    /// Resume after this sequence number (from the store) before following live.
    pub since: Option<i64>,
}

/// Shared between a session and its transport.
pub struct SessionState {
    /// The last sequence number the session has gone past (delivered or filtered out):
    /// where this subscriber would resume.
    pub examined: AtomicI64,
    /// Why the session ended, when it ended on its own.
    pub closed: Mutex<Option<String>>,
}

impl SessionState {
    fn close(&self, reason: String) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }

    /// Why the session ended, if it ended on its own.
    pub fn reason(&self) -> Option<String> {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The `closed` message telling the subscriber why the session ended (the service
    /// stopping, unless it ended on its own) and where to resume; and the reason alone.
    pub fn closed_notice(&self) -> (Value, String) {
        let reason = self.reason().unwrap_or_else(|| SHUTTING_DOWN.into());
        let notice = json!({
            "type": "closed",
            "reason": reason,
            "resume_from_seq": self.examined.load(Ordering::Relaxed) + 1,
        });
        (notice, reason)
    }
}

/// A subscriber's filter, and the commit it applies after.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The filter; `None` sends nothing until the next subscribe.
    pub filter: Option<Filter>,
    /// Events committed up to this sequence number were committed before the
    /// subscription changed: the filter in force then decides for them.
    pub after: i64,
}

/// A running session: the queue to drain, the filter to change, the shared state.
pub struct Session {
    /// Messages for the subscriber, in order; closed when the session ends.
    pub out: mpsc::Receiver<Out>,
    subscription: mpsc::UnboundedSender<Subscription>,
    live: Arc<Live>,
    /// Where the session stands.
    pub state: Arc<SessionState>,
}

impl Session {
    /// Changes the subscriber's filter, for events committed from now on.
    pub fn subscribe(&self, filter: Option<Filter>) {
        // The session has ended when nobody receives: nothing to change.
        self.subscription
            .send(Subscription {
                filter,
                after: self.live.committed(),
            })
            .ok();
    }
}

/// Starts a session for `who` with `filter`; it ends when the transport drops
/// [`Session::out`], when the subscriber stays too slow, or when the stream closes.
pub fn start(
    live: Arc<Live>,
    log: Arc<dyn CommittedLog>,
    who: Subscriber,
    filter: Option<Filter>,
    settings: StreamSettings,
) -> Session {
    let (tx, out) = mpsc::channel(settings.client_buffer.max(1));
    let (subscription, changes) = mpsc::unbounded_channel();
    let state = Arc::new(SessionState {
        examined: AtomicI64::new(who.since.unwrap_or(0)),
        closed: Mutex::new(None),
    });
    let (ring, joined_at) = live.subscribe();
    let stopped = live.stopped();
    let producer = Producer {
        stopped,
        sent: metrics::counter!(MESSAGES_SENT),
        missed_counter: metrics::counter!(MESSAGES_MISSED),
        position: who.since.unwrap_or(joined_at),
        ring,
        log,
        who,
        changes,
        filter,
        earlier: VecDeque::new(),
        tx,
        state: state.clone(),
        settings,
        missed: None,
    };
    tokio::spawn(producer.run());
    Session {
        out,
        subscription,
        live,
        state,
    }
}

/// Messages missed since the subscriber was last told.
#[derive(Debug, Clone, Copy)]
struct Missed {
    count: u64,
    /// The first missed event's sequence number (resume from here).
    from: i64,
    since: Instant,
}

struct Producer {
    stopped: watch::Receiver<bool>,
    /// The metrics this session counts into, looked up once.
    sent: metrics::Counter,
    missed_counter: metrics::Counter,
    /// The last sequence number gone past.
    position: i64,
    ring: broadcast::Receiver<LiveItem>,
    log: Arc<dyn CommittedLog>,
    who: Subscriber,
    changes: mpsc::UnboundedReceiver<Subscription>,
    /// The filter in force.
    filter: Option<Filter>,
    /// Earlier filters, oldest first, each with the last seq it decides for.
    earlier: VecDeque<(i64, Option<Filter>)>,
    tx: mpsc::Sender<Out>,
    state: Arc<SessionState>,
    settings: StreamSettings,
    missed: Option<Missed>,
}

/// Whether the session goes on.
type Go = Result<(), End>;

#[derive(Debug)]
struct End;

impl Producer {
    async fn run(mut self) {
        let result = self.serve().await;
        if result.is_err() && self.state.reason().is_none() {
            tracing::debug!("stream subscriber left");
        }
    }

    async fn serve(&mut self) -> Go {
        if self.who.since.is_some() {
            self.replay().await?;
        }
        let mut heartbeat = tokio::time::interval(self.settings.heartbeat);
        heartbeat.tick().await;
        let mut stopped = self.stopped.clone();
        // Right after a replay from the store, the ring may have moved on while the
        // store was read: that gap is read from the store too.
        let mut resuming = self.who.since.is_some();
        loop {
            tokio::select! {
                item = self.ring.recv() => match item {
                    Ok(item) => {
                        resuming = false;
                        self.offer(&item)?;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) if resuming => {
                        self.replay().await?;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // This session fell a whole ring behind the live stream: the
                        // subscriber is told, as for a full queue. Reading the gap back
                        // for every slow session would take the machine from ingest.
                        self.missed_on_ring(n)?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(End),
                },
                _ = heartbeat.tick() => self.heartbeat()?,
                // Room again after messages were missed: say so at once.
                permit = self.tx.clone().reserve_owned(), if self.missed.is_some() => {
                    let Ok(permit) = permit else { return Err(End) };
                    if let Some(missed) = self.missed.take() {
                        permit.send(lagged(missed));
                        self.sent.increment(1);
                    }
                }
                changed = stopped.changed() => {
                    let stopping = changed.is_err() || *stopped.borrow_and_update();
                    if stopping {
                        // Whatever is still on the ring goes first.
                        while let Ok(item) = self.ring.try_recv() {
                            self.offer(&item)?;
                        }
                        self.state.close(SHUTTING_DOWN.into());
                        return Err(End);
                    }
                }
                () = self.tx.closed() => return Err(End),
            }
        }
    }

    /// Sends what the store holds after the position, until it holds nothing newer.
    async fn replay(&mut self) -> Go {
        loop {
            let events = match self.log.committed_after(self.position, REPLAY_BATCH).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, "stream replay failed");
                    self.state
                        .close(format!("the store could not be read: {error}"));
                    return Err(End);
                }
            };
            if events.is_empty() {
                return Ok(());
            }
            for committed in events {
                let item = LiveItem::Event(Arc::new(committed.into()));
                self.offer(&item)?;
            }
        }
    }

    /// The filter that decides for an event committed at `seq`.
    fn filter_for(&mut self, seq: i64) -> Option<&Filter> {
        self.take_changes();
        while self.earlier.front().is_some_and(|(until, _)| *until < seq) {
            self.earlier.pop_front();
        }
        match self.earlier.front() {
            Some((_, earlier)) => earlier.as_ref(),
            None => self.filter.as_ref(),
        }
    }

    /// Applies the subscription changes the subscriber made since the last look.
    fn take_changes(&mut self) {
        while let Ok(change) = self.changes.try_recv() {
            let before = std::mem::replace(&mut self.filter, change.filter);
            self.earlier.push_back((change.after, before));
        }
    }

    /// Passes `item` through scope and filter and queues it.
    fn offer(&mut self, item: &LiveItem) -> Go {
        match item {
            LiveItem::Event(live) => {
                let seq = live.seq();
                if seq <= self.position {
                    return Ok(());
                }
                self.position = seq;
                self.state.examined.store(seq, Ordering::Relaxed);
                let event = &live.committed.encoded().event;
                // The log's records of side tables (fold records, detection's evidence
                // links) are bookkeeping, not events anyone watches.
                if event.service_record && evident_model::service::is_side_record(&event.event_type)
                {
                    return Ok(());
                }
                let wanted = in_scope(&self.who.scope, event.facility.as_deref())
                    && self.filter_for(seq).is_some_and(|f| f.matches(event));
                if !wanted {
                    return Ok(());
                }
                let show = &self.who.show;
                let committed_at = live.committed_at;
                let text = live.text(self.who.view, |c| {
                    let committed_at = committed_at.map_or(String::new(), |at| {
                        let at = OffsetDateTime::from(at)
                            .format(&Rfc3339)
                            .unwrap_or_default();
                        format!(r#","committed_at":"{at}""#)
                    });
                    let encoded = c.encoded();
                    let event = if encoded.event.sealed.is_none() {
                        String::from_utf8_lossy(&encoded.bytes).into_owned()
                    } else {
                        let mut value: Value =
                            serde_json::from_slice(&encoded.bytes).unwrap_or(Value::Null);
                        show(&mut value);
                        value.to_string()
                    };
                    format!(
                        r#"{{"type":"security_event","seq":{}{committed_at},"event":{event}}}"#,
                        c.seq
                    )
                });
                self.queue(Out {
                    kind: "security_event",
                    seq,
                    text,
                })
            }
            LiveItem::Finding(note) => {
                self.take_changes();
                let wanted = in_scope(&self.who.scope, note.facility.as_deref())
                    && self.filter.as_ref().is_some_and(|f| {
                        f.matches_finding(note.severity, note.facility.as_deref())
                    });
                if !wanted {
                    return Ok(());
                }
                let finding = match (&note.revealed, self.who.view) {
                    (Some(revealed), 1) => revealed,
                    _ => &note.finding,
                };
                let text = json!({"type": "finding", "seq": note.seq, "finding": finding});
                self.queue(Out {
                    kind: "finding",
                    seq: note.seq,
                    text: Arc::from(text.to_string()),
                })
            }
        }
    }

    fn heartbeat(&mut self) -> Go {
        let text = json!({
            "type": "heartbeat",
            "seq": self.position,
            "timestamp": now(),
        });
        self.queue(Out {
            kind: "heartbeat",
            seq: self.position,
            text: Arc::from(text.to_string()),
        })
    }

    /// Queues `out`, first telling the subscriber what it missed if it missed anything;
    /// counts it missed when the queue is full.
    fn queue(&mut self, out: Out) -> Go {
        if let Some(missed) = self.missed {
            match self.tx.try_send(lagged(missed)) {
                Ok(()) => {
                    self.sent.increment(1);
                    self.missed = None;
                }
                Err(mpsc::error::TrySendError::Full(_)) => return self.miss(&out),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(End),
            }
        }
        match self.tx.try_send(out) {
            Ok(()) => {
                self.sent.increment(1);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(out)) => self.miss(&out),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(End),
        }
    }

    /// Counts `n` messages that went by on the ring unread, from the next event after
    /// the position.
    fn missed_on_ring(&mut self, n: u64) -> Go {
        self.count_missed(n, self.position + 1)
    }

    /// Counts `out`, which found the subscriber's queue full.
    fn miss(&mut self, out: &Out) -> Go {
        if out.kind == "heartbeat" {
            // A heartbeat carries nothing to resume.
            return self.give_up_if_stuck();
        }
        self.count_missed(1, out.seq)
    }

    /// Adds `n` missed messages; the first of a run of misses says where it began.
    fn count_missed(&mut self, n: u64, from: i64) -> Go {
        self.missed_counter.increment(n);
        let missed = self.missed.get_or_insert(Missed {
            count: 0,
            from,
            since: Instant::now(),
        });
        missed.count += n;
        self.give_up_if_stuck()
    }

    fn give_up_if_stuck(&mut self) -> Go {
        let Some(missed) = self.missed else {
            return Ok(());
        };
        if missed.since.elapsed() < self.settings.send_timeout {
            return Ok(());
        }
        metrics::counter!(CLOSED_SLOW).increment(1);
        self.state.close(format!(
            "too slow: read nothing for {} s while {} messages were missed; reconnect with since_seq={}",
            self.settings.send_timeout.as_secs(),
            missed.count,
            missed.from - 1
        ));
        Err(End)
    }
}

/// The notice telling a subscriber what it missed.
fn lagged(missed: Missed) -> Out {
    let notice = json!({
        "type": "lagged",
        "missed": missed.count,
        "resume_from_seq": missed.from,
        "message": format!(
            "this client read too slowly: {} messages were not sent; reconnect with since_seq={} to get the events again",
            missed.count,
            missed.from - 1
        ),
    });
    Out {
        kind: "lagged",
        seq: missed.from - 1,
        text: Arc::from(notice.to_string()),
    }
}

/// Whether a message of `facility` may go to a caller limited to `scope`.
fn in_scope(scope: &Scope, facility: Option<&str>) -> bool {
    match scope {
        None => true,
        Some(allowed) => facility.is_some_and(|f| allowed.iter().any(|a| a == f)),
    }
}

/// Now, as RFC 3339 text.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

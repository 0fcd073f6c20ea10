//! One submitted request in flight: where each of its events' outcomes goes, and the
//! answer sent once every event has one.

use evident_store::Appended;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::sync::oneshot;

/// What became of one submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Committed under this sequence number.
    Stored(i64),
    /// Its id was already stored; nothing new was written.
    Duplicate,
    /// The store kept refusing it; it is durably in the dead-letter table.
    DeadLettered,
    /// Refused because the queue for its priority is full; retry later.
    Overloaded,
    /// Queued, not yet committed (fire-and-forget submissions are answered with this).
    Queued,
    /// A critical event durably written to the critical journal; the writer moves it into
    /// the store with its next commit (until then it is found by id with seq 0).
    Journaled,
    /// A repeat within the deduplication window: durably folded into this stored event.
    Folded(uuid::Uuid),
    /// Not committed: the store failed (the request answers 503).
    Failed(String),
}

impl From<Appended> for EventOutcome {
    fn from(a: Appended) -> Self {
        match a {
            Appended::Stored(seq) => EventOutcome::Stored(seq),
            Appended::Duplicate => EventOutcome::Duplicate,
        }
    }
}

/// A request whose events are queued, possibly in several priority lanes.
pub(crate) struct Pending {
    outcomes: Mutex<Vec<Option<EventOutcome>>>,
    remaining: AtomicUsize,
    reply: Mutex<Option<oneshot::Sender<Vec<EventOutcome>>>>,
}

impl Pending {
    /// A request of `len` events of which `queued` were queued; the others' outcomes are
    /// set in `outcomes` already.
    pub(crate) fn new(
        outcomes: Vec<Option<EventOutcome>>,
        queued: usize,
        reply: Option<oneshot::Sender<Vec<EventOutcome>>>,
    ) -> Self {
        Self {
            outcomes: Mutex::new(outcomes),
            remaining: AtomicUsize::new(queued),
            reply: Mutex::new(reply),
        }
    }

    /// Whether a submitter waits for this request's outcomes.
    pub(crate) fn wants_answer(&self) -> bool {
        self.reply
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Records outcomes for the events at `slots`; answers the request when it was the last.
    pub(crate) fn resolve(
        &self,
        slots: &[usize],
        outcomes: impl IntoIterator<Item = EventOutcome>,
    ) {
        {
            let mut all = self.outcomes.lock().unwrap_or_else(PoisonError::into_inner);
            for (&slot, outcome) in slots.iter().zip(outcomes) {
                all[slot] = Some(outcome);
            }
        }
        if self.remaining.fetch_sub(slots.len(), Ordering::AcqRel) == slots.len() {
            self.answer();
        }
    }

    /// Sends the answer (every outcome set by now).
    pub(crate) fn answer(&self) {
        let Some(reply) = self
            .reply
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let outcomes =
            std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(PoisonError::into_inner));
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| EventOutcome::Failed("no outcome recorded".into())))
            .collect();
        if reply.send(outcomes).is_err() {
            tracing::trace!("requester left before its events were committed");
        }
    }
}

//! The commit stage: the writer loop that drains the priority lanes into the store.
//!
//! Group commit: whenever the writer is free it takes what the lanes hold (by the rules
//! in [`crate::queues`]) and appends it in one store transaction — one fsync — then
//! answers every request whose events are now all committed. Under light load a commit is
//! one request and nothing waits; under heavy load commits grow by themselves, up to the
//! configured caps.
//!
//! Failures: a failing commit is retried with backoff. When the store refuses particular
//! events (a constraint, a value it cannot take) the batch is split in halves until the
//! poison events are alone; each of those goes to the dead-letter table and its
//! batch-mates are stored. When the store as a whole fails (full, read-only, gone) the
//! batch is not split: its requests are answered with the error, and the store is marked
//! failing until a commit succeeds again.

use crate::metrics as m;
use crate::pipeline::Shared;
use crate::queues::Part;
use crate::request::EventOutcome;
use crate::request::Pending;
use crate::stats::add;
use evident_model::{EncodedEvent, Priority};
use evident_store::{EventStore, StoreError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Attempts per batch before it is split or failed.
const ATTEMPTS: u32 = 3;
/// Wait before the first retry; each further retry waits four times longer.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Pause between commits while the store fails: first, and at most (doubling between).
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Starts the writer loop on a thread of its own: the moment a commit finishes it must
/// start the next, and a task could wait behind hundreds of ready connection tasks.
pub(crate) fn spawn(shared: Arc<Shared>, store: Arc<dyn EventStore>) -> JoinHandle<()> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(run(shared, store)))
}

async fn run(shared: Arc<Shared>, store: Arc<dyn EventStore>) {
    let mut pause = FIRST_PAUSE;
    while let Some(batch) = next_batch(&shared).await {
        commit_parts(&shared, store.as_ref(), batch).await;
        if shared.store_ok.load(Ordering::Acquire) {
            pause = FIRST_PAUSE;
        } else {
            // The store is failing (its requests were answered 503): what is still queued,
            // such as the service's own events, waits a little longer each time instead
            // of retrying in a tight loop.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
    crate::windows::close(&shared, true).await;
    shared.commits.close();
    tracing::debug!("commit stage drained and stopped");
}

/// Waits for work; `None` once the pipeline is closed and drained.
async fn next_batch(shared: &Shared) -> Option<Vec<Part>> {
    loop {
        let notified = shared.wake.notified();
        {
            let mut queues = shared.queues();
            if !queues.is_empty() {
                return Some(queues.take_batch(&shared.config, Instant::now()));
            }
            if shared.closed.load(Ordering::Acquire) {
                // Refusals not yet recorded are recorded before the writer stops.
                match shared.refusals.take_record(time::OffsetDateTime::now_utc()) {
                    Some(record) => {
                        drop(queues);
                        raise(shared, record, Priority::High);
                        continue;
                    }
                    None => return None,
                }
            }
        }
        notified.await;
    }
}

async fn commit_parts(shared: &Shared, store: &dyn EventStore, mut parts: Vec<Part>) {
    let events: Arc<[EncodedEvent]> = parts
        .iter_mut()
        .flat_map(|p| p.events.drain(..))
        .collect::<Vec<_>>()
        .into();
    let started = Instant::now();
    metrics::histogram!(m::COMMIT_BATCH_EVENTS).record(events.len() as f64);
    let outcomes = commit_resilient(shared, store, events.clone()).await;
    metrics::histogram!(m::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    add(&shared.stats.commits, 1);
    let committed_at = Instant::now();
    let seqs: Vec<i64> = outcomes
        .iter()
        .map(|o| match o {
            EventOutcome::Stored(seq) => *seq,
            _ => 0,
        })
        .collect();
    shared
        .commits
        .record_batch(events.clone(), seqs, committed_at);
    // Before anyone is answered: deduplication may fold repeats only into events that
    // are stored (a failed event's window goes, even if it is queued again).
    shared
        .dedup
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .settle(events.iter().zip(&outcomes).map(|(e, o)| {
            let stored = matches!(o, EventOutcome::Stored(_) | EventOutcome::Duplicate);
            (e.event.id, stored)
        }));
    let mut outcomes = outcomes.into_iter();
    let mut offset = 0;
    let mut moved_from_journal = Vec::new();
    for part in parts {
        let size = part.slots.len();
        let mine: Vec<EventOutcome> = outcomes.by_ref().take(size).collect();
        let failed = mine.iter().any(|o| matches!(o, EventOutcome::Failed(_)));
        if failed && !part.request.wants_answer() && !shared.closed.load(Ordering::Acquire) {
            // Nobody waits for these (fire-and-forget or the service's own events): keep
            // them queued and retry rather than lose them; the queue bound pushes back.
            requeue(shared, part, &events[offset..offset + size]);
            offset += size;
            continue;
        }
        if part.journaled {
            // Counted and timed when they were journaled; now stored, they leave the journal.
            moved_from_journal.extend(events[offset..offset + size].iter().map(|e| e.event.id));
            offset += size;
            part.request.resolve(&part.slots, mine);
            continue;
        }
        offset += size;
        for o in &mine {
            match o {
                EventOutcome::Stored(_) => add(&shared.stats.processed, 1),
                EventOutcome::Duplicate => add(&shared.stats.duplicates, 1),
                EventOutcome::DeadLettered => add(&shared.stats.dead_lettered, 1),
                EventOutcome::Failed(_) => add(&shared.stats.failed, 1),
                EventOutcome::Overloaded
                | EventOutcome::Queued
                | EventOutcome::Folded(_)
                | EventOutcome::Journaled => {}
            }
        }
        let waited = committed_at.duration_since(part.enqueued);
        shared.stats.record_latency(part.priority, waited, size);
        metrics::histogram!(m::COMMIT_WAIT_SECONDS, "priority" => part.priority.as_str())
            .record(waited.as_secs_f64());
        part.request.resolve(&part.slots, mine);
    }
    if !moved_from_journal.is_empty()
        && let Err(error) = store.forget_journaled(moved_from_journal).await
    {
        // Harmless: the next start moves them again and finds them already stored.
        tracing::warn!(%error, "stored critical events not yet removed from the journal");
    }
}

/// Puts a part whose commit failed back at the front of its lane.
fn requeue(shared: &Shared, mut part: Part, events: &[EncodedEvent]) {
    part.events = events.to_vec();
    let mut queues = shared.queues();
    for e in &part.events {
        queues.reserve(e.bytes.len());
    }
    queues.push_front(part);
}

/// Queues an event of the service's own at the front of its lane, outside the queue
/// bounds; nobody waits for it, so a failed commit keeps it queued until it is stored.
pub(crate) fn raise(shared: &Shared, event: EncodedEvent, priority: Priority) {
    let mut queues = shared.queues();
    queues.reserve(event.bytes.len());
    queues.push_front(Part {
        events: vec![event],
        slots: vec![0],
        request: Arc::new(Pending::new(vec![None], 1, None)),
        enqueued: Instant::now(),
        priority,
        journaled: false,
    });
}

/// Commits `events`, retrying, splitting around poison events, dead-lettering them.
fn commit_resilient<'a>(
    shared: &'a Shared,
    store: &'a dyn EventStore,
    events: Arc<[EncodedEvent]>,
) -> Pin<Box<dyn Future<Output = Vec<EventOutcome>> + Send + 'a>> {
    Box::pin(async move {
        let mut delay = FIRST_BACKOFF;
        let mut last_error = None;
        for attempt in 1..=ATTEMPTS {
            match store.append(events.clone()).await {
                Ok(appended) => {
                    if !shared.store_ok.swap(true, Ordering::AcqRel) {
                        tracing::warn!("the store takes writes again");
                    }
                    return appended.into_iter().map(EventOutcome::from).collect();
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, events = events.len(), "commit failed");
                    let store_wide = !error.is_event_specific();
                    if store_wide && shared.store_ok.swap(false, Ordering::AcqRel) {
                        tracing::error!(%error, "the store cannot be written; /readyz fails until a commit succeeds");
                        raise(
                            shared,
                            crate::system::store_unwritable(&error),
                            Priority::Critical,
                        );
                    }
                    last_error = Some(error);
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(delay).await;
                        delay *= 4;
                    }
                }
            }
        }
        let error = last_error.unwrap_or_else(|| StoreError::Task("no attempt made".into()));
        if !error.is_event_specific() {
            tracing::error!(%error, events = events.len(), "store failing; batch not committed");
            return vec![EventOutcome::Failed(error.to_string()); events.len()];
        }
        if events.len() > 1 {
            let (left, right) = events.split_at(events.len() / 2);
            let mut outcomes = commit_resilient(shared, store, left.into()).await;
            outcomes.extend(commit_resilient(shared, store, right.into()).await);
            return outcomes;
        }
        match store.dead_letter(&events[0], &error.to_string()).await {
            Ok(()) => {
                tracing::warn!(event_id = %events[0].event.id, %error, "event moved to the dead-letter table");
                vec![EventOutcome::DeadLettered]
            }
            Err(dl_error) => {
                tracing::error!(%dl_error, "cannot write the dead-letter table");
                vec![EventOutcome::Failed(error.to_string())]
            }
        }
    })
}

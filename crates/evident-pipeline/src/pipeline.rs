//! The pipeline handle: admission into the priority lanes, and shutdown.

use crate::commit;
use crate::config::PipelineConfig;
use crate::dedup::{Decision, Dedup};
use crate::queues::{Part, Queues};
use crate::request::{EventOutcome, Pending};
use crate::stats::{Stats, StatsSnapshot, add};
use crate::windows::Fold;
use evident_model::{EncodedEvent, Priority};
use evident_store::EventStore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// When a submitter is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Once every admitted event is committed to disk (the default).
    Commit,
    /// As soon as the events are queued (fire and forget): events queued but not yet
    /// committed are lost if the process dies, and store failures are only counted.
    Queued,
}

/// Why a submission was not taken at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    /// The pipeline is shutting down and takes nothing new.
    #[error("the service is shutting down")]
    Closed,
}

/// What admission and the committer share.
pub(crate) struct Shared {
    pub config: PipelineConfig,
    pub queues: Mutex<Queues>,
    pub wake: Notify,
    pub closed: AtomicBool,
    pub stats: Stats,
    /// False while the store is failing commits (read-only, full, unreachable).
    pub store_ok: AtomicBool,
    /// Open deduplication windows.
    pub dedup: Mutex<Dedup>,
    /// The store (folds and summaries are written directly, outside the lanes).
    pub store: Arc<dyn EventStore>,
    /// The committed stream's hub.
    pub commits: Arc<evident_stream::Commits>,
    /// Refusals counted since the last `system.ingest.refused` record.
    pub refusals: crate::refusals::Refusals,
}

impl Shared {
    pub(crate) fn queues(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The admission pipeline: bounded priority lanes in front of a group-committing writer.
/// Cheap to clone; every clone submits to the same lanes. Dropping the last clone closes
/// it as [`Pipeline::close`] does: the writer commits what is queued, then ends.
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
    _closes_on_drop: Arc<CloseOnDrop>,
}

/// Held only by [`Pipeline`] handles (the writer and timers hold [`Shared`]): when the last
/// handle goes, nobody can submit any more, so the pipeline closes.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.wake.notify_one();
    }
}

impl Pipeline {
    /// Starts the committer over `store`. It ends, after committing everything queued,
    /// once [`Pipeline::close`] is called or the last handle is dropped.
    pub fn start(store: Arc<dyn EventStore>, config: PipelineConfig) -> (Pipeline, JoinHandle<()>) {
        let shared = Arc::new(Shared {
            dedup: Mutex::new(Dedup::new(config.dedup.clone())),
            store: store.clone(),
            config,
            queues: Mutex::new(Queues::default()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            stats: Stats::default(),
            store_ok: AtomicBool::new(true),
            commits: Arc::default(),
            refusals: Default::default(),
        });
        let task = commit::spawn(shared.clone(), store);
        tokio::spawn(crate::windows::close_periodically(shared.clone()));
        tokio::spawn(crate::refusals::record_periodically(shared.clone()));
        let pipeline = Pipeline {
            _closes_on_drop: Arc::new(CloseOnDrop(shared.clone())),
            shared,
        };
        (pipeline, task)
    }

    /// Queues `events` and, with [`Ack::Commit`], waits until each is committed.
    ///
    /// Returns one outcome per event in order. Events that do not fit their priority's
    /// share of the queue are [`EventOutcome::Overloaded`] and were not queued; with
    /// [`Ack::Queued`] the others are [`EventOutcome::Queued`].
    pub async fn submit(
        &self,
        events: Vec<EncodedEvent>,
        ack: Ack,
    ) -> Result<Vec<EventOutcome>, PipelineError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PipelineError::Closed);
        }
        let len = events.len();
        add(&self.shared.stats.received, len);
        let (reply, answer) = oneshot::channel();
        let reply = (ack == Ack::Commit).then_some(reply);
        let mut outcomes: Vec<Option<EventOutcome>> = vec![None; len];
        let mut lanes: [Vec<(usize, EncodedEvent)>; 5] = Default::default();
        let (events, mut folds) = self.fold_repeats(events, ack);
        let mut refused = Vec::new();
        {
            let mut queues = self.shared.queues();
            for (slot, event) in events {
                let priority = event.event.priority;
                if queues.fits(&self.shared.config, priority, event.bytes.len()) {
                    queues.reserve(event.bytes.len());
                    lanes[usize::from(priority.rank())].push((slot, event));
                } else {
                    outcomes[slot] = Some(EventOutcome::Overloaded);
                    refused.push((event.event.id, false));
                }
            }
        }
        if !refused.is_empty() {
            self.dedup().settle(refused);
        }
        // Repeats of refused events are refused with them.
        folds.retain(|fold| match fold.after.map(|t| &outcomes[t]) {
            Some(Some(EventOutcome::Overloaded)) => {
                outcomes[fold.slot] = Some(EventOutcome::Overloaded);
                false
            }
            _ => true,
        });
        let reserved: usize = lanes.iter().map(Vec::len).sum();
        add(
            &self.shared.stats.rejected_overloaded,
            len - reserved - folds.len(),
        );
        for fold in &folds {
            outcomes[fold.slot] = Some(EventOutcome::Folded(fold.into));
        }
        let now = Instant::now();
        let critical = usize::from(Priority::Critical.rank());
        let journaled = if ack == Ack::Commit && !lanes[critical].is_empty() {
            self.journal(std::mem::take(&mut lanes[critical]), &mut outcomes, now)
                .await
                .map_err(|back| lanes[critical] = back)
                .ok()
        } else {
            None
        };
        if ack == Ack::Queued {
            for (slot, _) in lanes.iter().flatten() {
                outcomes[*slot] = Some(EventOutcome::Queued);
            }
        }
        let queued: usize = lanes.iter().map(Vec::len).sum();
        let early = {
            let snapshot = outcomes.clone();
            let pending = Arc::new(Pending::new(outcomes, queued, reply));
            let mut queues = self.shared.queues();
            if let Some(part) = journaled {
                queues.push(part);
            }
            for (rank, lane) in lanes.into_iter().enumerate() {
                if lane.is_empty() {
                    continue;
                }
                let (slots, events): (Vec<usize>, Vec<EncodedEvent>) = lane.into_iter().unzip();
                let priority = Priority::ALL[rank];
                queues.push(Part {
                    events,
                    slots,
                    request: pending.clone(),
                    enqueued: now,
                    priority,
                    journaled: false,
                });
            }
            if queued == 0 || ack == Ack::Queued {
                Some(
                    snapshot
                        .into_iter()
                        .map(|o| o.unwrap_or(EventOutcome::Overloaded))
                        .collect::<Vec<_>>(),
                )
            } else {
                None
            }
        };
        self.shared.wake.notify_one();
        let mut outcomes = match early {
            Some(outcomes) if ack == Ack::Queued => {
                tokio::spawn(crate::windows::record_folds(self.shared.clone(), folds));
                return Ok(outcomes);
            }
            Some(outcomes) => outcomes,
            None => answer.await.map_err(|_| PipelineError::Closed)?,
        };
        let folds = crate::windows::keep_folds_into_committed(folds, &mut outcomes);
        crate::windows::record_folds_into(&self.shared, folds, &mut outcomes).await;
        Ok(outcomes)
    }

    /// Writes a request's critical events to the store's critical journal, so they are
    /// acknowledged without waiting behind a bulk commit; returns them as a part for the
    /// writer to move into the store. On a journal failure gives the events back to go
    /// the usual way.
    async fn journal(
        &self,
        lane: Vec<(usize, EncodedEvent)>,
        outcomes: &mut [Option<EventOutcome>],
        enqueued: Instant,
    ) -> Result<Part, Vec<(usize, EncodedEvent)>> {
        let (slots, events): (Vec<usize>, Vec<EncodedEvent>) = lane.into_iter().unzip();
        let batch: Arc<[EncodedEvent]> = events.into();
        let new = match self.shared.store.journal_critical(batch.clone()).await {
            Ok(new) => new,
            Err(error) => {
                tracing::warn!(%error, "critical journal failed; committing these events the usual way");
                return Err(slots.into_iter().zip(batch.iter().cloned()).collect());
            }
        };
        let fresh = new.iter().filter(|n| **n).count();
        for (slot, new) in slots.iter().zip(new) {
            outcomes[*slot] = Some(if new {
                EventOutcome::Journaled
            } else {
                EventOutcome::Duplicate
            });
        }
        add(&self.shared.stats.processed, fresh);
        add(&self.shared.stats.duplicates, slots.len() - fresh);
        self.shared
            .stats
            .record_latency(Priority::Critical, enqueued.elapsed(), slots.len());
        let n = slots.len();
        Ok(Part {
            events: batch.to_vec(),
            slots: (0..n).collect(),
            request: Arc::new(Pending::new(vec![None; n], n, None)),
            enqueued,
            priority: Priority::Critical,
            journaled: true,
        })
    }

    /// Splits off the events deduplication folds: `(slot, event)` to queue, and the
    /// folds to record. A repeat of an event not yet committed is folded only into an
    /// event of this same request, and only once the answer shows that event committed
    /// (never with `Ack::Queued`, which does not wait to know); otherwise it is stored.
    fn fold_repeats(
        &self,
        events: Vec<EncodedEvent>,
        ack: Ack,
    ) -> (Vec<(usize, EncodedEvent)>, Vec<Fold>) {
        let now = Instant::now();
        let mut dedup = self.dedup();
        let mut keep = Vec::with_capacity(events.len());
        let mut folds = Vec::new();
        // Slots of this request's stored events by id, built at the first repeat of an
        // uncommitted event.
        let mut mine: Option<HashMap<uuid::Uuid, usize>> = None;
        for (slot, event) in events.into_iter().enumerate() {
            let (into, after) = match dedup.decide(&event, now) {
                Decision::Store => (None, None),
                Decision::Fold(into) => (Some(into), None),
                Decision::FoldIfCommitted(into) if ack == Ack::Commit => {
                    let mine = mine.get_or_insert_with(|| {
                        keep.iter()
                            .map(|(s, e): &(usize, EncodedEvent)| (e.event.id, *s))
                            .collect()
                    });
                    match mine.get(&into) {
                        Some(target) => (Some(into), Some(*target)),
                        None => (None, None),
                    }
                }
                Decision::FoldIfCommitted(_) => (None, None),
            };
            match into {
                Some(into) => folds.push(Fold {
                    slot,
                    id: event.event.id,
                    into,
                    after,
                }),
                None => {
                    if let Some(mine) = &mut mine {
                        mine.insert(event.event.id, slot);
                    }
                    keep.push((slot, event));
                }
            }
        }
        (keep, folds)
    }

    fn dedup(&self) -> MutexGuard<'_, Dedup> {
        self.shared
            .dedup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops taking submissions; the committer commits what is queued, then ends.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Whether the last commit attempt succeeded (false while the store is failing).
    pub fn store_ok(&self) -> bool {
        self.shared.store_ok.load(Ordering::Acquire)
    }

    /// The counters and queue depths now.
    pub fn stats(&self) -> StatsSnapshot {
        let (_, bytes, lanes) = self.shared.queues().depth();
        self.shared.stats.snapshot(lanes, bytes)
    }

    /// Counts `n` events refused for `reason` (overload, a failing store) with their
    /// priority (when known) and the API key that sent them; they are recorded as a
    /// `system.ingest.refused` event at the end of the window.
    pub fn count_refused(
        &self,
        reason: crate::refusals::Reason,
        priority: Option<Priority>,
        key: Option<i64>,
        n: u64,
    ) {
        self.shared
            .refusals
            .count(reason, priority, key, n, time::OffsetDateTime::now_utc());
    }

    /// Counts events refused by validation (reported with the pipeline's counters).
    pub fn count_invalid(&self, n: usize) {
        add(&self.shared.stats.rejected_invalid, n);
    }

    /// The committed stream's hub, for the stages that follow the commit.
    pub fn commits(&self) -> Arc<evident_stream::Commits> {
        self.shared.commits.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &PipelineConfig {
        &self.shared.config
    }
}

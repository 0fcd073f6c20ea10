//! Deduplication windows over time: recording folds durably, and summarizing windows
//! as they close (periodically, at shutdown, and at start for windows a crash left open).

use crate::dedup::summary;
use crate::pipeline::Shared;
use crate::request::EventOutcome;
use crate::stats::add;
use evident_model::Event;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often expired windows are looked for.
const TICK: Duration = Duration::from_millis(500);

/// A repeat to fold into a stored event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fold {
    /// Its position in the request.
    pub slot: usize,
    /// Its own id.
    pub id: Uuid,
    /// The stored event it is folded into.
    pub into: Uuid,
    /// The slot of that event when it is in the same request and was not committed when
    /// the repeat came: the fold stands only if that event's commit succeeded.
    pub after: Option<usize>,
}

/// Keeps the folds whose event is committed; the others share their event's fate
/// (refused, failed), so an acknowledged fold always points at a stored event.
pub(crate) fn keep_folds_into_committed(
    folds: Vec<Fold>,
    outcomes: &mut [EventOutcome],
) -> Vec<Fold> {
    folds
        .into_iter()
        .filter(|fold| {
            let Some(target) = fold.after else {
                return true;
            };
            let fate = match &outcomes[target] {
                EventOutcome::Stored(_) | EventOutcome::Duplicate | EventOutcome::Journaled => {
                    return true;
                }
                EventOutcome::Overloaded => EventOutcome::Overloaded,
                EventOutcome::Failed(reason) => EventOutcome::Failed(reason.clone()),
                other => {
                    EventOutcome::Failed(format!("the event it repeats was not stored ({other:?})"))
                }
            };
            outcomes[fold.slot] = fate;
            false
        })
        .collect()
}

/// Writes `folds` and sets their outcomes: `Folded` once durable, `Failed` if the store
/// refused.
pub(crate) async fn record_folds_into(
    shared: &Shared,
    folds: Vec<Fold>,
    outcomes: &mut [EventOutcome],
) {
    if folds.is_empty() {
        return;
    }
    let pairs: Vec<(Uuid, Uuid)> = folds.iter().map(|f| (f.id, f.into)).collect();
    match shared.store.append_folds(pairs).await {
        Ok(fresh) => {
            let mut dedup = shared.dedup.lock().unwrap_or_else(PoisonError::into_inner);
            for (fold, new) in folds.iter().zip(fresh) {
                dedup.folded_into(fold.into);
                if new {
                    add(&shared.stats.deduplicated, 1);
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, folds = folds.len(), "folds not recorded");
            add(&shared.stats.failed, folds.len());
            for fold in &folds {
                outcomes[fold.slot] = EventOutcome::Failed(error.to_string());
            }
        }
    }
}

/// [`record_folds_into`] for fire-and-forget submissions (outcomes already sent; their
/// folds all go into committed events).
pub(crate) async fn record_folds(shared: Arc<Shared>, folds: Vec<Fold>) {
    let mut ignored =
        vec![EventOutcome::Queued; folds.iter().map(|f| f.slot + 1).max().unwrap_or(0)];
    record_folds_into(&shared, folds, &mut ignored).await;
}

/// Summarizes windows a previous run left open, then expired windows every tick, until
/// the pipeline closes; the committer summarizes the rest when it ends.
pub(crate) async fn close_periodically(shared: Arc<Shared>) {
    match shared.store.open_fold_windows().await {
        Ok(open) => summarize(&shared, open).await,
        Err(error) => tracing::warn!(%error, "cannot look for deduplication windows left open"),
    }
    while !shared.closed.load(Ordering::Acquire) {
        tokio::time::sleep(TICK).await;
        close(&shared, false).await;
    }
}

/// Closes expired windows (all of them with `all`) and stores their summaries.
pub(crate) async fn close(shared: &Shared, all: bool) {
    let closed = shared
        .dedup
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .close_expired(Instant::now(), all);
    summarize(shared, closed).await;
}

async fn summarize(shared: &Shared, windows: Vec<Uuid>) {
    for into in windows {
        let original = match shared.store.get(into, None).await {
            Ok(Some(stored)) => serde_json::from_slice::<Event>(&stored.bytes).ok(),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, %into, "cannot read the event a window folded into; summary deferred to next start");
                continue;
            }
        };
        let Some(original) = original else {
            tracing::warn!(%into, "folds point at an event that is not stored; summary deferred");
            continue;
        };
        let build =
            Box::new(move |count| summary(&original, count, time::OffsetDateTime::now_utc()));
        match shared.store.summarize_folds(into, build).await {
            Ok(Some((count, appended))) => {
                if let evident_store::Appended::Stored(seq) = appended {
                    shared.commits.record(seq, std::time::Instant::now());
                }
                tracing::debug!(%into, count, "deduplication window summarized")
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, %into, "summary not stored; it will be retried at next start")
            }
        }
    }
}

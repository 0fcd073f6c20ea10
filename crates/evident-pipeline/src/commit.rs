//! The commit stage: group commit of admitted events into the store.
//!
//! Requests queue on a bounded channel. The committer takes the first waiting request,
//! then everything else already waiting (up to a batch cap), appends it all in one store
//! transaction — one fsync — and answers each request with its own events' outcomes.
//! Under light load a batch is one request and nothing waits; under heavy load batches
//! grow by themselves while the previous commit is running, which is what makes many
//! concurrent requests share one fsync.

use evident_model::EncodedEvent;
use evident_store::{Appended, EventStore, StoreError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Tuning of the commit stage.
#[derive(Debug, Clone, Copy)]
pub struct CommitConfig {
    /// Requests that may wait for the committer before senders wait for room.
    pub queue_requests: usize,
    /// Most events one store transaction takes (a single larger request is still taken whole).
    pub max_batch_events: usize,
}

impl Default for CommitConfig {
    fn default() -> Self {
        Self {
            queue_requests: 4096,
            max_batch_events: 20_000,
        }
    }
}

/// Why a commit request was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The store refused the batch; nothing in it was committed.
    #[error("store failed to commit: {0}")]
    Store(String),
    /// The commit stage has stopped (the service is shutting down).
    #[error("commit stage is shut down")]
    Closed,
}

struct Request {
    events: Vec<EncodedEvent>,
    reply: oneshot::Sender<Result<Vec<Appended>, CommitError>>,
}

/// Submits events to the commit stage; cheap to clone, one per request handler.
#[derive(Clone)]
pub struct CommitHandle {
    tx: mpsc::Sender<Request>,
}

impl CommitHandle {
    /// Commits `events` durably and reports, in order, what became of each.
    pub async fn commit(&self, events: Vec<EncodedEvent>) -> Result<Vec<Appended>, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { events, reply })
            .await
            .map_err(|_| CommitError::Closed)?;
        answer.await.map_err(|_| CommitError::Closed)?
    }
}

/// Starts the committer task. It ends, after committing everything queued, once every
/// [`CommitHandle`] is dropped.
pub fn spawn_committer(
    store: Arc<dyn EventStore>,
    config: CommitConfig,
) -> (CommitHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue_requests.max(1));
    let task = tokio::spawn(run(store, rx, config));
    (CommitHandle { tx }, task)
}

async fn run(store: Arc<dyn EventStore>, mut rx: mpsc::Receiver<Request>, config: CommitConfig) {
    while let Some(first) = rx.recv().await {
        let mut queued = first.events.len();
        let mut requests = vec![first];
        while queued < config.max_batch_events {
            match rx.try_recv() {
                Ok(next) => {
                    queued += next.events.len();
                    requests.push(next);
                }
                Err(_) => break,
            }
        }
        commit_group(store.as_ref(), requests).await;
    }
    tracing::debug!("commit stage drained and stopped");
}

async fn commit_group(store: &dyn EventStore, mut requests: Vec<Request>) {
    let sizes: Vec<usize> = requests.iter().map(|r| r.events.len()).collect();
    let batch: Vec<EncodedEvent> = requests
        .iter_mut()
        .flat_map(|r| r.events.drain(..))
        .collect();
    let events = batch.len();
    let started = Instant::now();
    let result = store.append(batch).await;
    tracing::trace!(
        events,
        requests = requests.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "group committed"
    );
    match result {
        Ok(outcomes) => {
            debug_assert_eq!(outcomes.len(), events);
            let mut outcomes = outcomes.into_iter();
            for (request, size) in requests.into_iter().zip(sizes) {
                // A requester that went away (client disconnected) still had its events committed.
                if request
                    .reply
                    .send(Ok(outcomes.by_ref().take(size).collect()))
                    .is_err()
                {
                    tracing::trace!("requester left before its commit was acknowledged");
                }
            }
        }
        Err(error) => fail_all(requests, &error),
    }
}

fn fail_all(requests: Vec<Request>, error: &StoreError) {
    tracing::error!(%error, requests = requests.len(), "commit failed; nothing in the batch was acknowledged");
    for request in requests {
        if request
            .reply
            .send(Err(CommitError::Store(error.to_string())))
            .is_err()
        {
            tracing::trace!("requester left before its commit failed");
        }
    }
}

//! Where admitted events go: today the local priority lanes and commit; later a
//! JetStream publisher.

use async_trait::async_trait;
use evident_model::{EncodedEvent, Priority};
use evident_pipeline::{Ack, EventOutcome, Pipeline, RefusalReason};

/// A sink could take nothing of a submission.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Takes admitted, encoded events and says what became of each.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Queues `events` and, with [`Ack::Commit`], waits until each is committed. One
    /// outcome per event, in order.
    async fn submit(
        &self,
        events: Vec<EncodedEvent>,
        ack: Ack,
    ) -> Result<Vec<EventOutcome>, SinkError>;

    /// Counts events refused by validation, with the sink's own counters.
    fn count_invalid(&self, n: usize);

    /// Counts events refused by `reason`, to be recorded as a `system.ingest.refused`
    /// event.
    fn count_refused(
        &self,
        reason: RefusalReason,
        priority: Option<Priority>,
        key: Option<i64>,
        n: u64,
    );
}

#[async_trait]
impl Sink for Pipeline {
    async fn submit(
        &self,
        events: Vec<EncodedEvent>,
        ack: Ack,
    ) -> Result<Vec<EventOutcome>, SinkError> {
        Pipeline::submit(self, events, ack)
            .await
            .map_err(|e| SinkError(e.to_string()))
    }

    fn count_invalid(&self, n: usize) {
        Pipeline::count_invalid(self, n);
    }

    fn count_refused(
        &self,
        reason: RefusalReason,
        priority: Option<Priority>,
        key: Option<i64>,
        n: u64,
    ) {
        Pipeline::count_refused(self, reason, priority, key, n);
    }
}

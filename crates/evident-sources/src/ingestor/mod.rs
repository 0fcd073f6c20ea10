//! The one way in: raw input from any source → decoded, normalized and validated events →
//! the transforms (sealing personal data) → one canonical encoding each → a [`Sink`] →
//! one [`Report`].
//!
//! Decoding runs on a blocking thread when the input is large (or compressed), and the
//! transforms whenever one applies (sealing may write new subjects' keys): the async
//! workers stay free for small and critical requests. At most
//! [`IngestorConfig::admission_threads`] inputs are decoded on blocking threads at once,
//! so a crowd of parsers cannot take the CPU from the writer.

mod input;
mod report;
mod sink;
mod transform;

pub use input::RawInput;
pub use report::{Counts, Report, Taken, Verdict};
pub use sink::{Sink, SinkError};
pub use transform::{Sealing, Transform, TransformError};

use evident_ingest::{Admission, DecodeError, Limits, Normalized, PriorityRules};
use evident_model::{EncodedEvent, Event, Priority};
use evident_pipeline::{Ack, EventOutcome, RefusalReason};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

/// Inputs that weigh more than this are decoded on a blocking thread.
const INLINE_BYTES: usize = 64 * 1024;

/// How an ingestor admits input.
#[derive(Clone)]
pub struct IngestorConfig {
    /// Bounds on input: body size, events per input, nesting, string sizes.
    pub limits: Limits,
    /// Priorities per event type, for events that name none.
    pub priorities: Arc<PriorityRules>,
    /// Inputs decoded on blocking threads at once.
    pub admission_threads: usize,
}

impl Default for IngestorConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            priorities: Arc::default(),
            admission_threads: admission_threads(),
        }
    }
}

/// One fewer than the cores, at least one: a core stays for the writer and the async
/// workers.
fn admission_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// Who sent an input, and when they want their answer.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Answer once committed ([`Ack::Commit`]) or once queued ([`Ack::Queued`]).
    pub ack: Ack,
    /// The API key that sent it, when one did (refusals are counted per key).
    pub key: Option<i64>,
}

/// Why an input was not taken at all (a bad event only refuses that event; see
/// [`Report::rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input cannot be taken apart into events (not JSON, too many events, ...).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A transform or the sink cannot take anything now (the key store failed, the
    /// service is shutting down); nothing of the input was queued.
    #[error("{0}")]
    Unavailable(String),
    /// Admission itself stopped (a blocking task panicked).
    #[error("admission failed: {0}")]
    Internal(String),
}

/// The one way in for every source. Cheap to clone; clones share the sink, the
/// transforms and the admission threads.
#[derive(Clone)]
pub struct Ingestor {
    inner: Arc<Inner>,
}

struct Inner {
    sink: Arc<dyn Sink>,
    transforms: Vec<Arc<dyn Transform>>,
    config: IngestorConfig,
    permits: Arc<Semaphore>,
}

impl Ingestor {
    /// An ingestor handing events to `sink` after `transforms`, in order.
    pub fn new(
        sink: Arc<dyn Sink>,
        transforms: Vec<Arc<dyn Transform>>,
        config: IngestorConfig,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(config.admission_threads.max(1)));
        Self {
            inner: Arc::new(Inner {
                sink,
                transforms,
                config,
                permits,
            }),
        }
    }

    /// The bounds on input in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// Decodes, admits, transforms and submits `input`; returns what became of each of
    /// its events.
    pub async fn ingest(
        &self,
        input: impl RawInput,
        context: Context,
    ) -> Result<Report, IngestError> {
        let started = std::time::Instant::now();
        let admission = self.admit(input).await?;
        let report = self.submit(admission, context).await;
        metrics::histogram!(evident_pipeline::metrics::INGEST_SECONDS)
            .record(started.elapsed().as_secs_f64());
        report
    }

    /// Submits events the service made itself (audit records, replayed dead letters):
    /// valid by construction, so only the transforms and the encoding run.
    pub async fn ingest_events(
        &self,
        events: Vec<Event>,
        context: Context,
    ) -> Result<Report, IngestError> {
        let normalized = Normalized {
            indices: (0..events.len()).collect(),
            events,
            ..Normalized::default()
        };
        let admission = self.finish_off_workers(normalized).await?;
        self.submit(admission, context).await
    }

    async fn admit(&self, input: impl RawInput) -> Result<Admission, IngestError> {
        let received_at = OffsetDateTime::now_utc();
        if input.weight() > INLINE_BYTES {
            let _permit = self
                .inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| IngestError::Internal(e.to_string()))?;
            let inner = self.inner.clone();
            return tokio::task::spawn_blocking(move || {
                let normalized = inner.normalize(input, received_at)?;
                inner.finish(normalized)
            })
            .await
            .map_err(|e| IngestError::Internal(e.to_string()))?;
        }
        let normalized = self.inner.normalize(input, received_at)?;
        self.finish_off_workers(normalized).await
    }

    /// Transforms and encodes `normalized`: on a blocking thread when a transform has
    /// work to do, inline otherwise.
    async fn finish_off_workers(&self, normalized: Normalized) -> Result<Admission, IngestError> {
        if !self.inner.transforms_apply(&normalized.events) {
            return Ok(normalized.encode(&self.inner.config.limits));
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.finish(normalized))
            .await
            .map_err(|e| IngestError::Internal(e.to_string()))?
    }

    async fn submit(&self, admission: Admission, context: Context) -> Result<Report, IngestError> {
        let Admission {
            accepted,
            rejected,
            lines,
        } = admission;
        let sink = &self.inner.sink;
        sink.count_invalid(rejected.len());
        let mut report = Report {
            total: accepted.len() + rejected.len(),
            taken: Vec::with_capacity(accepted.len()),
            rejected,
            lines,
        };
        if accepted.is_empty() {
            return Ok(report);
        }
        let (indices, events): (Vec<usize>, Vec<EncodedEvent>) = accepted.into_iter().unzip();
        let heads: Vec<(uuid::Uuid, Priority)> = events
            .iter()
            .map(|e| (e.event.id, e.event.priority))
            .collect();
        let outcomes = sink
            .submit(events, context.ack)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        let mut refused: BTreeMap<(RefusalReason, Priority), u64> = BTreeMap::new();
        for ((index, (id, priority)), outcome) in indices.into_iter().zip(heads).zip(outcomes) {
            let reason = match outcome {
                EventOutcome::Overloaded => Some(RefusalReason::Overloaded),
                EventOutcome::Failed(_) => Some(RefusalReason::StoreFailed),
                _ => None,
            };
            if let Some(reason) = reason {
                *refused.entry((reason, priority)).or_default() += 1;
            }
            report.taken.push(Taken {
                index,
                id,
                priority,
                outcome,
            });
        }
        for ((reason, priority), n) in refused {
            sink.count_refused(reason, Some(priority), context.key, n);
        }
        Ok(report)
    }
}

impl Inner {
    fn normalize(
        &self,
        input: impl RawInput,
        received_at: OffsetDateTime,
    ) -> Result<Normalized, IngestError> {
        let limits = &self.config.limits;
        let items = input.decode(limits)?;
        Ok(evident_ingest::normalize_items(
            items,
            limits,
            &self.config.priorities,
            received_at,
        ))
    }

    fn transforms_apply(&self, events: &[Event]) -> bool {
        self.transforms
            .iter()
            .any(|t| events.iter().any(|e| t.applies_to(e)))
    }

    /// Runs every transform that has work in `normalized`, then encodes each event once.
    fn finish(&self, mut normalized: Normalized) -> Result<Admission, IngestError> {
        for transform in &self.transforms {
            if normalized.events.iter().any(|e| transform.applies_to(e)) {
                transform
                    .apply(&mut normalized.events)
                    .map_err(|e| IngestError::Unavailable(e.to_string()))?;
            }
        }
        Ok(normalized.encode(&self.config.limits))
    }
}

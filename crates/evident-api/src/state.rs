//! What request handlers share.

use crate::auth::KeyCache;
use evident_ingest::{Limits, PriorityRules};
use evident_pipeline::Pipeline;
use evident_store::{EventStore, FindingStore, KeyStore};
use std::sync::Arc;

/// Shared handles for the handlers: each a small, purpose-named piece.
#[derive(Clone)]
pub struct AppState {
    /// Where events are read from.
    pub store: Arc<dyn EventStore>,
    /// Where keys are checked.
    pub keys: Arc<dyn KeyStore>,
    /// Where admitted events go to be queued and committed.
    pub pipeline: Pipeline,
    /// Bounds on ingest input.
    pub limits: Limits,
    /// Recently validated keys.
    pub key_cache: Arc<KeyCache>,
    /// How long a client may take to send a request body.
    pub body_timeout: std::time::Duration,
    /// Configured priorities per event type.
    pub priorities: Arc<PriorityRules>,
    /// Renders `/metrics` (absent when no recorder is installed, as in unit tests).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Whether `/metrics` needs a read key.
    pub metrics_require_key: bool,
    /// Request bytes that may be taken in at once.
    pub inflight: crate::inflight::InflightBudget,
    /// Large request bodies parsed at once on blocking threads.
    pub admission_permits: Arc<tokio::sync::Semaphore>,
    /// Where detection's findings are kept (absent: findings routes answer 404).
    pub findings: Option<Arc<dyn FindingStore>>,
    /// The rules directory and the detection stage (absent: rules routes answer 404).
    pub rules: Option<crate::routes::rules::RulesState>,
    /// The public key checkpoints are signed with.
    pub integrity_key: Option<[u8; 32]>,
    /// The store's signed log, when it keeps one.
    pub integrity_log: Option<Arc<dyn evident_store::IntegrityLog>>,
    /// The live stream, once the service runs one.
    pub stream: Option<crate::routes::stream::StreamState>,
}

impl AppState {
    /// State over `store`/`keys`, submitting to `pipeline`.
    pub fn new(
        store: Arc<dyn EventStore>,
        keys: Arc<dyn KeyStore>,
        pipeline: Pipeline,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            keys,
            pipeline,
            limits,
            key_cache: Arc::default(),
            body_timeout: crate::BODY_TIMEOUT,
            priorities: Arc::default(),
            metrics: None,
            metrics_require_key: false,
            inflight: crate::inflight::InflightBudget::new(crate::inflight::DEFAULT_INFLIGHT_BYTES),
            admission_permits: Arc::new(tokio::sync::Semaphore::new(admission_threads())),
            findings: None,
            rules: None,
            integrity_key: None,
            integrity_log: None,
            stream: None,
        }
    }
}

/// Threads that parse large bodies at once: one fewer than the cores, at least one, so a
/// core stays for the writer and the async workers.
fn admission_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

//! What request handlers share.

use crate::auth::KeyCache;
use evident_pipeline::Pipeline;
use evident_privacy::Privacy;
use evident_sources::Ingestor;
use evident_store::{EventStore, FindingStore, KeyStore};
use std::sync::Arc;

/// Shared handles for the handlers: each a small, purpose-named piece.
#[derive(Clone)]
pub struct AppState {
    /// Where events are read from.
    pub store: Arc<dyn EventStore>,
    /// Where keys are checked.
    pub keys: Arc<dyn KeyStore>,
    /// The commit stage (its counters, its committed stream).
    pub pipeline: Pipeline,
    /// The one way in for events: admission, sealing, then the pipeline.
    pub ingestor: Ingestor,
    /// Personal data protection, when configured: who may see personal values.
    pub privacy: Option<Arc<Privacy>>,
    /// Recently validated keys.
    pub key_cache: Arc<KeyCache>,
    /// How long a client may take to send a request body.
    pub body_timeout: std::time::Duration,
    /// Renders `/metrics` (absent when no recorder is installed, as in unit tests).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Whether `/metrics` needs a read key.
    pub metrics_require_key: bool,
    /// Request bytes that may be taken in at once.
    pub inflight: crate::inflight::InflightBudget,
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
    /// State over `store`/`keys`, taking events in through `ingestor` (which feeds
    /// `pipeline`).
    pub fn new(
        store: Arc<dyn EventStore>,
        keys: Arc<dyn KeyStore>,
        pipeline: Pipeline,
        ingestor: Ingestor,
    ) -> Self {
        Self {
            store,
            keys,
            pipeline,
            ingestor,
            privacy: None,
            key_cache: Arc::default(),
            body_timeout: crate::BODY_TIMEOUT,
            metrics: None,
            metrics_require_key: false,
            inflight: crate::inflight::InflightBudget::new(crate::inflight::DEFAULT_INFLIGHT_BYTES),
            findings: None,
            rules: None,
            integrity_key: None,
            integrity_log: None,
            stream: None,
        }
    }
}

impl AppState {
    /// The store as a reader of events (what the query side needs of it).
    pub fn reader(&self) -> Arc<dyn evident_store::EventReader> {
        self.store.clone()
    }
}

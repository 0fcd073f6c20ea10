//! evident's runtime pipeline: the stages between admission and the store.
//!
//! # Layout
//!
//! - [`pipeline`]: the [`Pipeline`] handle — admission into bounded priority lanes
//!   (refusing lower priorities first when full), acknowledgement modes, shutdown.
//! - [`queues`](crate::queues): the lanes and the rule for what the next commit takes.
//! - [`commit`](crate::commit): the writer loop — group commit, retries, poison-event
//!   isolation and dead-lettering.
//! - [`dedup`]: folding repeats within a window, with exact, durable summaries.
//! - `windows`: recording folds durably and summarizing windows as they close.
//! - [`request`]: per-request outcome tracking.
//! - [`refusals`]: refused events counted into one `system.ingest.refused` record per
//!   window.
//! - [`config`]: per-priority knobs and queue bounds.
//! - [`stats`]: the counters behind `/api/v1/stats/pipeline` and `/metrics`;
//!   [`metrics`](crate::metrics): the metric names.
//!
//! The commit stage tells the committed stream's hub ([`evident_stream::Commits`]) what
//! it committed; the stages after the commit follow it.
//! - [`system`]: events the service raises about itself (store failures, erasures).

mod commit;
pub mod config;
pub mod dedup;
pub mod metrics;
pub mod pipeline;
mod queues;
pub mod refusals;
pub mod request;
pub mod stats;
pub mod system;
mod windows;

pub use config::{PipelineConfig, PriorityKnobs};
pub use dedup::DedupConfig;
pub use pipeline::{Ack, Pipeline, PipelineError};
pub use refusals::Reason as RefusalReason;
pub use request::EventOutcome;
pub use stats::StatsSnapshot;

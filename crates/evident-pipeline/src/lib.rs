//! evident's runtime pipeline: the stages between admission and the store.
//!
//! # Layout
//!
//! - [`pipeline`]: the [`Pipeline`] handle — admission into bounded priority lanes
//!   (refusing lower priorities first when full), acknowledgement modes, shutdown.
//! - [`queues`](crate::queues): the lanes and the rule for what the next commit takes.
//! - [`commit`](crate::commit): the writer loop — group commit, retries, poison-event
//!   isolation and dead-lettering.
//! - [`request`]: per-request outcome tracking.
//! - [`config`]: per-priority knobs and queue bounds.
//! - [`stats`]: the counters behind `/api/v1/stats/pipeline` and `/metrics`;
//!   [`metrics`](crate::metrics): the metric names.
//!
//! Later stages get their own modules here: deduplication in front of the lanes, and
//! the committed-event stream feeding detection and live streaming after the commit.

mod commit;
pub mod config;
pub mod metrics;
pub mod pipeline;
mod queues;
pub mod request;
pub mod stats;

pub use config::{PipelineConfig, PriorityKnobs};
pub use pipeline::{Ack, Pipeline, PipelineError};
pub use request::EventOutcome;
pub use stats::StatsSnapshot;

//! evident's runtime pipeline: the stages between admission and the store, as tasks
//! joined by bounded channels.
//!
//! # Layout
//!
//! - [`commit`]: the commit stage — group commit of admitted events, durable before any
//!   acknowledgement.
//!
//! Later stages get their own modules here: priority queues and deduplication in front of
//! the commit stage, and the committed-event stream feeding detection and live streaming
//! after it.

pub mod commit;

pub use commit::{CommitConfig, CommitError, CommitHandle, spawn_committer};

//! evident's detection stage: Sigma rules evaluated over events.
//!
//! The Sigma language itself (parsing, modifiers, conditions, the candidate index that
//! skips rules an event cannot match) is RSigma's (`rsigma-parser`, `rsigma-eval`).
//! This crate is what surrounds it.
//!
//! # Layout
//!
//! - [`rules`]: loading rule files from a directory, every rule that cannot load named
//!   with its file, line where known, and reason, never stopping the others;
//! - [`fields`]: the view of an event rules match against — evident's own events with
//!   Sigma's common field names mapped onto them, and Windows event log JSON
//!   (`Event.System` / `Event.EventData`) flattened the way Sigma's Windows rules expect;
//! - `compat`: where parsed rules are brought back to the Sigma specification before
//!   RSigma compiles them (id-less rules, temporal defaults, `base64offset`);
//! - [`backtest`]: one rule over stored events, reporting what it would have found;
//! - [`anomaly`]: statistical rules (an evident extension): rate anomalies per group
//!   against a rolling baseline;
//! - [`Detector`]: a loaded rule set that tells which rules an event fires;
//! - [`library`]: the rules directory: listing, changing it (checked before writing),
//!   noticing when its files change;
//! - [`pack`]: the default rule pack, built in;
//! - [`stage`]: the stage that follows the committed stream, runs every event through
//!   the rules and records findings, resuming where it stopped after a restart.

pub mod anomaly;
pub mod backtest;
mod compat;
pub mod fields;
pub mod library;
pub mod pack;
pub mod rules;
pub mod stage;
pub mod typed;

pub use rules::{Detector, LoadReport, Match, RuleInfo, RuleProblem};
pub use stage::{DetectionHandle, DetectionLag, DetectionStats, FindingsChanged, StageConfig};

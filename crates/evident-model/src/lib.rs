//! evident's domain types: the canonical security event and its vocabulary.
//!
//! # Layout
//!
//! - [`event`]: [`Event`] and [`Actor`], the one model every input shape becomes.
//! - [`level`]: the five-level [`Severity`] and [`Priority`] scales and their aliases.
//! - [`taxonomy`]: [`Category`], [`Outcome`] and the defaults derived from an event type.
//! - [`encode`]: the canonical byte encoding stores keep and the integrity chain hashes.
//! - [`service`]: the source and event types reserved for the service's own records.
//!
//! No I/O and no async here: every other crate depends on this one.

pub mod encode;
pub mod event;
pub mod level;
pub mod service;
pub mod taxonomy;

pub use encode::{EncodedEvent, canonical_bytes};
pub use event::{Actor, Event, Sealed, from_unix_micros, to_stored_precision, unix_micros};
pub use level::{Priority, Severity, UnknownLevel};
pub use taxonomy::{Category, MAX_TYPE_LEN, Outcome, default_severity, is_type_name};

//! evident's admission: from raw event objects to validated canonical events.
//!
//! # Layout
//!
//! - [`decode`]: body framing (JSON object, JSON array, NDJSON) and the bounds every raw
//!   event must respect (depth, string sizes, line size, events per request).
//! - [`normalize`]: shape detection (canonical and the three seed shapes), field mapping,
//!   defaults from the taxonomy, and validation with errors that name the field.
//! - [`admit`]: the two together for one request, yielding encoded events ready to commit.
//! - [`strict`]: JSON parsing that notes keys repeated within an object.
//! - [`limits`]: the configurable bounds; [`error`]: what bad input is told.
//! - [`priorities`]: priority overrides per event type, from the configuration.
//!
//! Everything here is pure and synchronous; the HTTP layer and the pipeline own the I/O.
//! The sources themselves (HTTP bodies, syslog, the agent's lines) and the ingestor
//! that runs admission for all of them live in evident-sources.

pub mod admit;
pub mod decode;
pub mod error;
pub mod limits;
pub mod normalize;
pub mod priorities;
pub mod strict;

pub use admit::{Admission, Normalized, admit, admit_with, normalize_body, normalize_items};
pub use decode::BodyFormat;
pub use error::{DecodeError, FieldError, Rejection};
pub use limits::Limits;
pub use priorities::PriorityRules;

//! One module per resource; each handler checks the caller, calls one service, answers.

pub mod dead_letters;
pub mod events;
pub mod findings;
pub mod health;
pub mod ingest;
pub mod integrity;
pub mod metrics;
pub mod pipeline;
pub mod privacy;
pub mod rules;
pub mod stats;
pub mod stream;

use evident_model::from_unix_micros;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

/// A stored time (Unix microseconds) as RFC 3339 text, or null if out of range.
pub(crate) fn rfc3339(micros: i64) -> Value {
    from_unix_micros(micros)
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

//! Raw JSON object → canonical [`Event`]: detect the shape, read it, fill defaults, validate.
//!
//! Pure and synchronous: the caller passes the receipt time, so the same input and time
//! always give the same event (which is what the property tests rely on).

mod draft;
mod fields;
mod shapes;

#[cfg(test)]
mod tests;

pub use draft::{MAX_FUTURE_SKEW, MAX_LABELS, MAX_SHORT_LEN, MAX_TYPE_LEN, MAX_USER_AGENT_LEN};
pub use shapes::Shape;

use crate::error::FieldError;
use crate::priorities::PriorityRules;
use evident_model::Event;
use fields::Fields;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Normalizes one raw event object received at `received_at`.
///
/// On failure returns every rule the event broke, each naming the field as the sender wrote it.
pub fn normalize(
    raw: Map<String, Value>,
    received_at: OffsetDateTime,
) -> Result<Event, Vec<FieldError>> {
    normalize_with(raw, received_at, &PriorityRules::default())
}

/// [`normalize`], giving events that name no priority the one `rules` set for their type.
pub fn normalize_with(
    raw: Map<String, Value>,
    received_at: OffsetDateTime,
    rules: &PriorityRules,
) -> Result<Event, Vec<FieldError>> {
    let mut errors = Vec::new();
    let shape = Shape::detect(&raw);
    let fields = Fields::root(raw, &mut errors);
    let mut draft = match shape {
        Shape::Canonical => shapes::canonical(fields),
        Shape::Collector => shapes::collector(fields),
        Shape::Opmas => shapes::opmas(fields),
        Shape::Batched => shapes::batched(fields),
    };
    draft.lift_from_payload();
    if draft.priority.is_none() {
        draft.priority = draft
            .event_type
            .as_ref()
            .and_then(|(t, _)| rules.priority_for(t));
    }
    match draft.finish(received_at, &mut errors) {
        Some(event) if errors.is_empty() => Ok(event),
        _ => Err(errors),
    }
}

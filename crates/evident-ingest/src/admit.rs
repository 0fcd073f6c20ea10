//! One request body → the events to commit and the ones refused, in request order.

use crate::decode::{BodyFormat, RawItem, check_bounds, decode};
use crate::error::{DecodeError, FieldError, Rejection};
use crate::limits::Limits;
use crate::normalize::normalize_with;
use crate::priorities::PriorityRules;
use evident_model::{EncodedEvent, Event};
use time::OffsetDateTime;

/// What admission made of one request.
#[derive(Debug, Default)]
pub struct Admission {
    /// Valid events with their position in the request, in request order.
    pub accepted: Vec<(usize, EncodedEvent)>,
    /// Invalid events with every rule each broke, in request order.
    pub rejected: Vec<Rejection>,
    /// The body line of each event by its position (NDJSON; empty for JSON).
    pub lines: Vec<usize>,
}

impl Admission {
    /// Events the request carried, valid or not.
    pub fn total(&self) -> usize {
        self.accepted.len() + self.rejected.len()
    }
}

/// Decodes, bounds-checks, normalizes, validates and encodes every event of `body`.
pub fn admit(
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
    received_at: OffsetDateTime,
) -> Result<Admission, DecodeError> {
    admit_with(body, format, limits, &PriorityRules::default(), received_at)
}

/// [`admit`], applying the configured per-type priorities to events that name none.
pub fn admit_with(
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
    priorities: &PriorityRules,
    received_at: OffsetDateTime,
) -> Result<Admission, DecodeError> {
    normalize_body(body, format, limits, priorities, received_at).map(|n| n.encode(limits))
}

/// What admission made of one request before encoding: the valid events as typed
/// events, so transforms (sealing personal data) can change them before they are encoded
/// once, and the refused ones.
#[derive(Debug, Default)]
pub struct Normalized {
    /// Position in the request of each valid event, in request order.
    pub indices: Vec<usize>,
    /// The valid events, parallel to `indices`.
    pub events: Vec<Event>,
    /// Invalid events with every rule each broke, in request order.
    pub rejected: Vec<Rejection>,
    /// The body line of each event by its position (NDJSON; empty for JSON).
    pub lines: Vec<usize>,
}

/// Decodes, bounds-checks, normalizes and validates every event of `body`, leaving the
/// valid ones unencoded; [`Normalized::encode`] finishes admission.
pub fn normalize_body(
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
    priorities: &PriorityRules,
    received_at: OffsetDateTime,
) -> Result<Normalized, DecodeError> {
    Ok(normalize_items(
        decode(body, format, limits)?,
        limits,
        priorities,
        received_at,
    ))
}

/// Bounds-checks, normalizes and validates raw events any source decoded (each with its
/// input line where lines mean something), leaving the valid ones unencoded.
pub fn normalize_items(
    items: Vec<(Option<usize>, RawItem)>,
    limits: &Limits,
    priorities: &PriorityRules,
    received_at: OffsetDateTime,
) -> Normalized {
    let mut normalized = Normalized::default();
    for (index, (line, item)) in items.into_iter().enumerate() {
        if let Some(line) = line {
            normalized.lines.push(line);
        }
        let result = item.and_then(|raw| {
            check_bounds(&raw, limits)
                .map_err(|e| vec![e])
                .and_then(|()| normalize_with(raw, received_at, priorities))
                .map_err(|errors| Rejection {
                    index,
                    line,
                    errors,
                })
        });
        match result {
            Ok(event) => {
                normalized.indices.push(index);
                normalized.events.push(event);
            }
            Err(rejection) => normalized.rejected.push(rejection),
        }
    }
    normalized
}

impl Normalized {
    /// Encodes each valid event canonically, refusing those whose encoding is over
    /// `limits.max_event_bytes`.
    pub fn encode(self, limits: &Limits) -> Admission {
        let mut admission = Admission {
            accepted: Vec::with_capacity(self.events.len()),
            rejected: self.rejected,
            lines: self.lines,
        };
        let mut oversized = false;
        for (index, event) in self.indices.into_iter().zip(self.events) {
            let encoded = EncodedEvent::new(event);
            if encoded.bytes.len() > limits.max_event_bytes {
                let reason = format!(
                    "event encodes to {} bytes, over the {}-byte limit",
                    encoded.bytes.len(),
                    limits.max_event_bytes
                );
                let line = admission.lines.get(index).copied();
                admission.rejected.push(Rejection {
                    index,
                    line,
                    errors: vec![FieldError::new("", reason)],
                });
                oversized = true;
            } else {
                admission.accepted.push((index, encoded));
            }
        }
        if oversized {
            admission.rejected.sort_by_key(|r| r.index);
        }
        admission
    }
}

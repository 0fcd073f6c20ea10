//! What admission reports about bad input.

use serde::Serialize;

/// One broken rule in one field of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the field as the sender named it, e.g. `actor.ip` or `eventData.size`;
    /// empty when the event as a whole is at fault.
    pub field: String,
    /// What rule it broke, in words.
    pub reason: String,
}

impl FieldError {
    /// An error in `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// An event of a request that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Position of the event in the request (0-based, blank NDJSON lines not counted).
    pub index: usize,
    /// 1-based line of the body the event came from (NDJSON only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Every rule the event broke.
    pub errors: Vec<FieldError>,
}

/// A request body that cannot be taken apart into events at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The content type is not one evident reads.
    #[error(
        "unsupported content type `{0}`; send application/json (one event or an array) or application/x-ndjson (one event per line)"
    )]
    UnsupportedContentType(String),
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but neither an object nor an array.
    #[error("body must be a JSON object (one event) or an array of objects, got {0}")]
    WrongShape(&'static str),
    /// The body holds no event.
    #[error("body holds no event")]
    Empty,
    /// The body decompresses to more than the body limit.
    #[error("the body decompresses to more than the {limit}-byte limit")]
    TooLarge {
        /// The configured body limit, in bytes.
        limit: usize,
    },
    /// The body is not valid in its declared compression.
    #[error("the body is {0}")]
    InvalidCompression(String),
    /// More events than one request may carry.
    #[error("request carries {count} events, over the limit of {limit} per request; split it")]
    TooManyEvents {
        /// Events in the request (counted up to the point of refusal).
        count: usize,
        /// The configured limit.
        limit: usize,
    },
}

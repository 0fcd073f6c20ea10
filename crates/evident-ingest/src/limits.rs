//! The bounds admission enforces on untrusted input.

/// Bounds on one request and each event in it. Every bound is checked before the
/// work it protects, so no input can make admission allocate or recurse without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes (enforced by the HTTP layer before decoding).
    pub max_body_bytes: usize,
    /// Most events one request may carry.
    pub max_events: usize,
    /// Largest event: an NDJSON line, and the canonical encoding, in bytes.
    pub max_event_bytes: usize,
    /// Deepest nesting of objects and arrays inside one event.
    pub max_depth: usize,
    /// Longest string value (or object key) anywhere in an event, in bytes.
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_events: 10_000,
            max_event_bytes: 256 * 1024,
            max_depth: 32,
            max_string_bytes: 64 * 1024,
        }
    }
}

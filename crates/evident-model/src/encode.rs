//! The canonical byte encoding of a stored event.
//!
//! An event's canonical bytes are its compact JSON serialization: fields in the order
//! [`Event`] declares them, empty optional fields left out, object keys inside `data`,
//! `target` and `context` sorted bytewise (serde_json's ordered map), times in RFC 3339 UTC
//! with microsecond precision, no insignificant whitespace. The same event always encodes
//! to the same bytes; the stores keep exactly these bytes, and the integrity chain hashes them.

use crate::event::Event;

/// An event together with its canonical bytes, ready to commit.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// The event.
    pub event: Event,
    /// Its canonical encoding.
    pub bytes: Vec<u8>,
}

impl EncodedEvent {
    /// Encodes `event` canonically.
    pub fn new(event: Event) -> Self {
        let bytes = canonical_bytes(&event);
        Self { event, bytes }
    }
}

/// The canonical bytes of `event`.
pub fn canonical_bytes(event: &Event) -> Vec<u8> {
    // Serializing a struct of strings, enums, numbers and JSON maps cannot fail.
    serde_json::to_vec(event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Actor;
    use crate::level::{Priority, Severity};
    use crate::taxonomy::{Category, Outcome};
    use serde_json::json;
    use time::macros::datetime;

    fn sample() -> Event {
        let data = json!({"zeta": 1, "alpha": {"b": 2, "a": 1}});
        Event {
            id: uuid::Uuid::nil(),
            time: datetime!(2024-06-01 00:00:00.123456 UTC),
            received_at: datetime!(2024-06-01 00:00:01 UTC),
            event_type: "user.login".into(),
            category: Category::Authentication,
            severity: Severity::Info,
            priority: Priority::Info,
            outcome: Outcome::Success,
            source: None,
            agent_id: None,
            actor: Actor {
                user_id: Some("u1".into()),
                ..Actor::default()
            },
            target: Default::default(),
            facility: None,
            correlation_id: None,
            data: data.as_object().cloned().unwrap_or_default(),
            context: Default::default(),
            tags: vec![],
            compliance: vec![],
            sealed: None,
            service_record: false,
        }
    }

    #[test]
    fn encoding_is_compact_sorted_and_stable() {
        let bytes = canonical_bytes(&sample());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"id":"00000000-0000-0000-0000-000000000000","time":"2024-06-01T00:00:00.123456Z","received_at":"2024-06-01T00:00:01Z","type":"user.login","category":"authentication","severity":"info","priority":"info","outcome":"success","actor":{"user_id":"u1"},"data":{"alpha":{"a":1,"b":2},"zeta":1}}"#
        );
        let back: Event = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            canonical_bytes(&back),
            bytes,
            "decode then encode must give the same bytes"
        );
    }
}

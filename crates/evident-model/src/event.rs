//! The canonical event every input shape is normalized into.

use crate::level::{Priority, Severity};
use crate::taxonomy::{Category, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who performed the action an event records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The session the action ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The client address, normalized to its canonical text form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The client's user agent string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Actor {
    /// True when no field is set (then the actor is left out of the encoding).
    pub fn is_empty(&self) -> bool {
        self.user_id.is_none()
            && self.session_id.is_none()
            && self.ip.is_none()
            && self.user_agent.is_none()
    }
}

/// One security event in evident's canonical model.
///
/// Field order here is the order of the canonical encoding (see [`crate::encode`]);
/// changing it changes every stored event's bytes, so it is part of the storage format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client-supplied or server-assigned (v7) id; the idempotency key.
    pub id: Uuid,
    /// When the event happened, per its source (UTC, microsecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// When evident received it (UTC, microsecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Dotted lowercase name, e.g. `auth.login.failure`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Taxonomy category.
    pub category: Category,
    /// How bad it is.
    pub severity: Severity,
    /// How urgently it is committed and handed on.
    pub priority: Priority,
    /// Whether the recorded action succeeded.
    pub outcome: Outcome,
    /// The emitting service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The emitting agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Who acted.
    #[serde(default, skip_serializing_if = "Actor::is_empty")]
    pub actor: Actor,
    /// What was acted on: resource, station_id, asset_id, ...
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub target: Map<String, Value>,
    /// Site or plant; also the unit of access scoping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<String>,
    /// Request or workflow id tying events together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Free-form payload.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
    /// The sender's own context object (host, service, version, ...), kept as sent.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
    /// Free labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Framework controls this event evidences (derived from the category, plus any sent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compliance: Vec<String>,
    /// The personal fields' values, encrypted under the subject's key; the fields
    /// themselves then hold pseudonyms. Absent when nothing personal was sent or personal
    /// data protection is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
    /// Set on the records the service makes about itself (deduplication summaries,
    /// refused ingest, erasures, finding changes), never on a client's event: no input
    /// shape can set it, and admission refuses client events that claim the service's
    /// source or types (see [`crate::service`]). Left out of the encoding when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub service_record: bool,
}

/// An event's personal fields, encrypted at rest under a key of the person they are
/// about (the subject); destroying that key makes them unreadable everywhere at once,
/// while the event's bytes, and so the integrity log, stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The subject's key id: the subject's pseudonym.
    pub key: String,
    /// Field path (`actor.user_id`, `data.email`, ...) → base64 of nonce, ciphertext and tag.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Set only in answers, never stored: the subject's key was erased, so the fields can
    /// no longer be read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

/// Microseconds since the Unix epoch; the integer form stores index and compare.
pub fn unix_micros(t: OffsetDateTime) -> i64 {
    // i128 → i64 cannot overflow for any time a validated event carries (years 1970..=9999).
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// The time `micros` microseconds after the Unix epoch, if representable.
pub fn from_unix_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

/// `t` truncated to whole microseconds, in UTC: the precision evident stores.
pub fn to_stored_precision(t: OffsetDateTime) -> OffsetDateTime {
    from_unix_micros(unix_micros(t)).unwrap_or(t)
}

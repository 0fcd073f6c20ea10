//! A security event in evident's canonical shape.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How bad it is (evident's five levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical: sent ahead of everything else, without waiting for a batch.
    Critical,
}

impl Severity {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// How urgently evident commits it (batching and shedding; default from the type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical: journaled by the server; sent by the client at once.
    Critical,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// Whether what happened succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed.
    Failure,
    /// Not known.
    Unknown,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Unknown => "unknown",
        }
    }
}

/// A security event, built field by field. Fields left unset take evident's defaults
/// (category, priority and outcome from the type, severity from the type).
///
/// ```
/// use evident_client::{Event, Outcome, Severity};
///
/// let event = Event::new("station.operation")
///     .severity(Severity::Low)
///     .outcome(Outcome::Success)
///     .user("op_1")
///     .target("station_id", "STN-A-01")
///     .data("operation", "torque_check");
/// let json = event.to_json();
/// assert_eq!(json["type"], "station.operation");
/// assert_eq!(json["target"]["station_id"], "STN-A-01");
/// assert!(json["id"].is_string(), "the id is made when the event is built");
/// ```
#[derive(Debug, Clone)]
pub struct Event {
    id: uuid::Uuid,
    fields: Map<String, Value>,
    severity: Option<Severity>,
    critical: bool,
}

impl Event {
    /// An event of `event_type` (dotted, lowercase: `auth.login.failure`), happening
    /// now, with a new id.
    pub fn new(event_type: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert("type".into(), Value::String(event_type.into()));
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        fields.insert("time".into(), Value::String(now));
        Self {
            id: uuid::Uuid::now_v7(),
            fields,
            severity: None,
            critical: false,
        }
    }

    /// An event from canonical JSON fields someone else built (a parser, an agent);
    /// its id is the one in `fields` when that is a UUID, a new one otherwise.
    pub fn from_fields(mut fields: Map<String, Value>) -> Self {
        let id = fields
            .remove("id")
            .and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(uuid::Uuid::now_v7);
        let severity = match fields.get("severity").and_then(Value::as_str) {
            Some("critical") => Some(Severity::Critical),
            _ => None,
        };
        let critical = fields.get("priority").and_then(Value::as_str) == Some("critical");
        Self {
            id,
            fields,
            severity,
            critical,
        }
    }

    /// The event's id: evident stores an id once, however often it is sent.
    pub fn id(&self) -> uuid::Uuid {
        self.id
    }

    /// Sets the id (for ids derived from the source, so a resend is stored once).
    pub fn with_id(mut self, id: uuid::Uuid) -> Self {
        self.id = id;
        self
    }

    /// The severity set, if any.
    pub fn severity_level(&self) -> Option<Severity> {
        self.severity
    }

    /// How bad it is.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self.fields
            .insert("severity".into(), Value::from(severity.as_str()));
        self
    }

    /// How urgently evident commits it.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.critical |= priority == Priority::Critical;
        self.fields
            .insert("priority".into(), Value::from(priority.as_str()));
        self
    }

    /// Whether the client sends it ahead of the rest, at once (critical severity or
    /// priority).
    pub fn is_critical(&self) -> bool {
        self.critical || self.severity == Some(Severity::Critical)
    }

    /// Whether it succeeded.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.fields
            .insert("outcome".into(), Value::from(outcome.as_str()));
        self
    }

    /// When it happened (default: when the event was built).
    pub fn time(mut self, time: OffsetDateTime) -> Self {
        if let Ok(text) = time.format(&Rfc3339) {
            self.fields.insert("time".into(), Value::from(text));
        }
        self
    }

    /// The category (authentication, authorization, manufacturing, data, system, ...).
    pub fn category(self, category: &str) -> Self {
        self.field("category", category)
    }

    /// The emitting service.
    pub fn source(self, source: &str) -> Self {
        self.field("source", source)
    }

    /// The site or plant (also what keys may be limited to).
    pub fn facility(self, facility: &str) -> Self {
        self.field("facility", facility)
    }

    /// The request or workflow id.
    pub fn correlation_id(self, id: &str) -> Self {
        self.field("correlation_id", id)
    }

    /// The user acting (`actor.user_id`).
    pub fn user(self, user: &str) -> Self {
        self.actor("user_id", user)
    }

    /// The address acting from (`actor.ip`).
    pub fn ip(self, ip: &str) -> Self {
        self.actor("ip", ip)
    }

    /// The session (`actor.session_id`).
    pub fn session(self, session: &str) -> Self {
        self.actor("session_id", session)
    }

    /// The user agent (`actor.user_agent`).
    pub fn user_agent(self, agent: &str) -> Self {
        self.actor("user_agent", agent)
    }

    /// What was acted on: `target.<key>`.
    pub fn target(mut self, key: &str, value: impl Into<Value>) -> Self {
        object(&mut self.fields, "target").insert(key.into(), value.into());
        self
    }

    /// Free data: `data.<key>`.
    pub fn data(mut self, key: &str, value: impl Into<Value>) -> Self {
        object(&mut self.fields, "data").insert(key.into(), value.into());
        self
    }

    /// A label.
    pub fn tag(mut self, tag: &str) -> Self {
        let tags = self
            .fields
            .entry("tags")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            tags.push(Value::from(tag));
        }
        self
    }

    /// The event as evident's canonical JSON.
    pub fn to_json(&self) -> Value {
        let mut fields = self.fields.clone();
        fields.insert("id".into(), json!(self.id));
        Value::Object(fields)
    }

    fn field(mut self, key: &str, value: &str) -> Self {
        self.fields.insert(key.into(), Value::from(value));
        self
    }

    fn actor(mut self, key: &str, value: &str) -> Self {
        object(&mut self.fields, "actor").insert(key.into(), Value::from(value));
        self
    }
}

fn object<'a>(fields: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = fields
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("an object")
}

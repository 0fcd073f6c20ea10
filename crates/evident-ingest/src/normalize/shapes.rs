//! Readers for each accepted input shape: evident's canonical one and the three seed shapes.

use super::draft::Draft;
use super::fields::Fields;
use evident_model::{Category, Outcome, Priority, Severity};
use serde_json::Value;
use uuid::Uuid;

/// The input shapes evident accepts, told apart by their keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{type, time, severity, actor, target, data, ...}` as in the brief.
    Canonical,
    /// The event collector seed: `{eventType, eventData, context, metadata, userId, sourceIp, ...}`,
    /// and the seeds' `security_events` row form `{event_type, data, user_id, source_ip, ...}`.
    Collector,
    /// OPMAS agents: `{id, agent_id, type: LOG|NETWORK|AUTH|FILE|PROCESS|REGISTRY|CUSTOM, data, timestamp}`.
    Opmas,
    /// The batched service's `logEvent(type, source, details, options)`:
    /// `{type: "AUTH_LOGIN_FAILURE", source: "web", details: {...}, priority: "HIGH"}`.
    Batched,
}

const OPMAS_TYPES: [(&str, &str, Category); 7] = [
    ("LOG", "log.event", Category::System),
    ("NETWORK", "network.event", Category::Network),
    ("AUTH", "auth.event", Category::Authentication),
    ("FILE", "file.event", Category::File),
    ("PROCESS", "process.event", Category::Process),
    ("REGISTRY", "registry.event", Category::Registry),
    ("CUSTOM", "custom.event", Category::Custom),
];

impl Shape {
    /// Which shape a raw object is written in.
    pub fn detect(map: &serde_json::Map<String, Value>) -> Shape {
        if map.contains_key("eventType") || map.contains_key("event_type") {
            return Shape::Collector;
        }
        match map.get("type") {
            Some(Value::String(t)) if is_upper_snake(t) => {
                let opmas = OPMAS_TYPES.iter().any(|(name, ..)| name == t);
                if opmas && !map.contains_key("details") {
                    Shape::Opmas
                } else {
                    Shape::Batched
                }
            }
            _ => Shape::Canonical,
        }
    }
}

fn is_upper_snake(t: &str) -> bool {
    t.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && t.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn severity(f: &mut Fields<'_>, keys: &[&str]) -> Option<Severity> {
    f.parsed(keys, Severity::parse_alias, "a severity (critical, high, medium, low, info, or an alias such as error, warning, notice, debug)")
}

fn priority(f: &mut Fields<'_>, keys: &[&str]) -> Option<Priority> {
    f.parsed(
        keys,
        Priority::parse_alias,
        "a priority (critical, high, medium, low or info)",
    )
}

fn id(f: &mut Fields<'_>, keys: &[&str]) -> Option<Uuid> {
    f.parsed(keys, |s| Uuid::parse_str(s.trim()).ok(), "a UUID")
}

const UNKNOWN_HINT: &str = "; free-form fields belong under `data`";

/// Reads the canonical shape.
pub(crate) fn canonical(mut f: Fields<'_>) -> Draft {
    let mut d = Draft {
        id: id(&mut f, &["id"]),
        time: f.time(&["time", "timestamp"]),
        event_type: f.string(&["type"]).map(|t| (t, "type")),
        category: f.parsed(&["category"], Category::parse, "a category (authentication, authorization, manufacturing, data, system, network, file, process, registry, api, threat, custom)"),
        severity: severity(&mut f, &["severity"]),
        priority: priority(&mut f, &["priority"]),
        outcome: f.parsed(&["outcome"], Outcome::parse_alias, "an outcome (success, failure or unknown)"),
        source: f.ident(&["source"]),
        agent_id: f.ident(&["agent_id"]),
        facility: f.ident(&["facility"]),
        correlation_id: f.ident(&["correlation_id"]),
        target: f.object(&["target"]).unwrap_or_default(),
        data: f.object(&["data"]).unwrap_or_default(),
        context: f.object(&["context"]).unwrap_or_default(),
        tags: f.strings("tags"),
        compliance: f.strings("compliance"),
        ip_field: "actor.ip",
        ..Draft::default()
    };
    if let Some(mut actor) = f.nested("actor") {
        d.actor.user_id = actor.ident(&["user_id"]);
        d.actor.session_id = actor.ident(&["session_id"]);
        d.actor.ip = actor.string(&["ip"]);
        d.actor.user_agent = actor.string(&["user_agent"]);
        actor.reject_unknown("; actor has user_id, session_id, ip and user_agent");
    }
    if f.take(&["service_record", "sealed"]).is_some() {
        f.error(
            "service_record",
            "`service_record` and `sealed` are set only by evident on the records it makes",
        );
    }
    if f.string(&["received_at"]).is_some() {
        f.error(
            "received_at",
            "is set by the server; send the event's own time as `time`",
        );
    }
    f.reject_unknown(UNKNOWN_HINT);
    d
}

/// Reads the collector seed's shape (camelCase, and the snake_case row form).
pub(crate) fn collector(mut f: Fields<'_>) -> Draft {
    let event_type = match f.string(&["eventType"]) {
        Some(t) => Some((t, "eventType")),
        None => f.string(&["event_type"]).map(|t| (t, "event_type")),
    };
    let mut d = Draft {
        id: id(&mut f, &["id"]),
        time: f.time(&["timestamp", "time"]),
        event_type,
        data: f
            .object(&["eventData", "event_data", "data"])
            .unwrap_or_default(),
        correlation_id: f.ident(&["correlationId", "correlation_id"]),
        severity: severity(&mut f, &["severity"]),
        facility: f.ident(&["facility"]),
        ..Draft::default()
    };
    d.actor.user_id = f.ident(&["userId", "user_id"]);
    if let Some(ip) = f.string(&["sourceIp"]) {
        (d.actor.ip, d.ip_field) = (Some(ip), "sourceIp");
    } else if let Some(ip) = f.string(&["source_ip"]) {
        (d.actor.ip, d.ip_field) = (Some(ip), "source_ip");
    }
    let mut context = f.object(&["context"]).unwrap_or_default();
    if let Some(metadata) = f.object(&["metadata"]) {
        if d.severity.is_none() {
            d.severity = metadata
                .get("severity")
                .and_then(Value::as_str)
                .and_then(Severity::parse_alias);
        }
        context.insert("metadata".to_owned(), Value::Object(metadata));
    }
    let text = |k: &str| context.get(k).and_then(Value::as_str).map(str::to_owned);
    d.correlation_id = d.correlation_id.or_else(|| text("correlationId"));
    d.source = text("source").or_else(|| {
        context
            .get("metadata")
            .and_then(|m| m.get("source"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    d.facility = d.facility.or_else(|| text("facility"));
    if d.time.is_none() {
        d.time = text("timestamp").and_then(|t| {
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
        });
    }
    d.context = context;
    f.reject_unknown("; the collector shape has id, eventType, eventData, context, metadata, timestamp, correlationId, userId, sourceIp, severity");
    d
}

/// Reads an OPMAS agent event. `AUTH` is category authentication, or authorization when
/// its `data.action` is an access decision (see [`is_authorization_action`]).
pub(crate) fn opmas(mut f: Fields<'_>) -> Draft {
    let raw_type = f.string(&["type"]).unwrap_or_default();
    let (_, event_type, category) = OPMAS_TYPES
        .iter()
        .find(|(name, ..)| *name == raw_type)
        .copied()
        .unwrap_or(OPMAS_TYPES[6]);
    let mut d = Draft {
        id: id(&mut f, &["id"]),
        agent_id: f.ident(&["agent_id"]),
        time: f.time(&["timestamp"]),
        data: f.object(&["data"]).unwrap_or_default(),
        event_type: Some((event_type.to_owned(), "type")),
        category: Some(category),
        ..Draft::default()
    };
    d.severity = d
        .data
        .get("severity")
        .and_then(Value::as_str)
        .and_then(Severity::parse_alias);
    if raw_type == "AUTH" && is_authorization_action(&d.data) {
        d.category = Some(Category::Authorization);
    }
    f.reject_unknown("; the OPMAS shape has id, agent_id, type, data, timestamp");
    d
}

/// Whether an OPMAS `AUTH` event ("authentication or authorization event") is an
/// access decision rather than a login: its `data.action` names access, authorization or
/// a permission (`access_check`, `authorize`), and no login or logout.
fn is_authorization_action(data: &serde_json::Map<String, Value>) -> bool {
    let Some(action) = data.get("action").and_then(Value::as_str) else {
        return false;
    };
    let words: Vec<String> = action
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::to_ascii_lowercase)
        .collect();
    let any = |names: &[&str]| words.iter().any(|w| names.contains(&w.as_str()));
    any(&[
        "access",
        "authorize",
        "authorization",
        "authz",
        "permission",
        "privilege",
    ]) && !any(&[
        "login",
        "logon",
        "logout",
        "logoff",
        "signin",
        "signon",
        "authenticate",
    ])
}

/// Reads the batched service's `logEvent` call sent as JSON.
pub(crate) fn batched(mut f: Fields<'_>) -> Draft {
    let raw_type = f.string(&["type"]).unwrap_or_default();
    let mut d = Draft {
        id: id(&mut f, &["id"]),
        time: f.time(&["timestamp", "time"]),
        event_type: Some((raw_type.to_ascii_lowercase().replace('_', "."), "type")),
        source: f.ident(&["source"]).map(|s| s.to_ascii_lowercase()),
        data: f.object(&["details"]).unwrap_or_default(),
        priority: priority(&mut f, &["priority"]),
        severity: severity(&mut f, &["severity"]),
        correlation_id: f.ident(&["correlationId", "correlation_id"]),
        facility: f.ident(&["facility"]),
        ..Draft::default()
    };
    d.severity = d.severity.or(d.priority.map(Severity::from));
    f.reject_unknown("; the batched shape has type, source, details, priority (and optionally id, timestamp, severity, correlationId, facility)");
    d
}

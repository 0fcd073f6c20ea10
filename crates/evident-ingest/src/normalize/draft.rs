//! The shape-independent middle step: what a shape reader found, before defaults and checks.

use crate::error::FieldError;
use evident_model::service;
use evident_model::{
    Actor, Category, Event, Outcome, Priority, Severity, default_severity, to_stored_precision,
};
use serde_json::{Map, Value};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub use evident_model::MAX_TYPE_LEN;
/// Longest short text field (ids, source, facility, ...).
pub const MAX_SHORT_LEN: usize = 256;
/// Longest user agent.
pub const MAX_USER_AGENT_LEN: usize = 1024;
/// Most tags or compliance labels on one event.
pub const MAX_LABELS: usize = 64;
/// How far in the future an event time may lie (clock skew allowance).
pub const MAX_FUTURE_SKEW: Duration = Duration::days(1);

/// Event fields as a shape reader found them, each optional until [`Draft::finish`].
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub id: Option<Uuid>,
    pub time: Option<OffsetDateTime>,
    /// The type and the field name it came from (for error messages).
    pub event_type: Option<(String, &'static str)>,
    pub category: Option<Category>,
    pub severity: Option<Severity>,
    pub priority: Option<Priority>,
    pub outcome: Option<Outcome>,
    pub source: Option<String>,
    pub agent_id: Option<String>,
    pub actor: Actor,
    /// Where the actor's ip came from, when it was sent explicitly (errors name it).
    pub ip_field: &'static str,
    pub target: Map<String, Value>,
    pub facility: Option<String>,
    pub correlation_id: Option<String>,
    pub data: Map<String, Value>,
    pub context: Map<String, Value>,
    pub tags: Vec<String>,
    pub compliance: Vec<String>,
}

/// Keys copied from `data` into the actor when the sender set no actor field.
const ACTOR_USER: &[&str] = &["user_id", "userId", "username", "user"];
const ACTOR_SESSION: &[&str] = &["session_id", "sessionId"];
const ACTOR_IP: &[&str] = &[
    "source_ip",
    "sourceIp",
    "ipAddress",
    "ip_address",
    "src_ip",
    "client_ip",
];
const ACTOR_AGENT: &[&str] = &["user_agent", "userAgent"];
/// Keys copied from `data` into the target when the sender named no target.
const TARGET_KEYS: &[&str] = &[
    "station_id",
    "asset_id",
    "equipment_id",
    "resource",
    "panel_id",
];

impl Draft {
    /// Fills actor and target gaps from well-known keys of `data`, then of `context`
    /// (copies: `data` and `context` keep every key as sent).
    pub(crate) fn lift_from_payload(&mut self) {
        for source in [&self.data, &self.context] {
            fill(&mut self.actor.user_id, source, ACTOR_USER, |s| {
                Some(s.to_owned())
            });
            fill(&mut self.actor.session_id, source, ACTOR_SESSION, |s| {
                Some(s.to_owned())
            });
            fill(&mut self.actor.ip, source, ACTOR_IP, |s| {
                s.trim().parse::<IpAddr>().ok().map(|ip| ip.to_string())
            });
            fill(&mut self.actor.user_agent, source, ACTOR_AGENT, |s| {
                Some(s.to_owned())
            });
        }
        if self.target.is_empty() {
            for key in TARGET_KEYS {
                if let Some(v @ (Value::String(_) | Value::Number(_))) = self.data.get(*key) {
                    self.target.insert((*key).to_owned(), v.clone());
                }
            }
        }
    }

    /// Applies defaults and checks every rule, giving the event or every broken rule.
    pub(crate) fn finish(
        self,
        received_at: OffsetDateTime,
        errors: &mut Vec<FieldError>,
    ) -> Option<Event> {
        let received_at = to_stored_precision(received_at);
        let Some((event_type, type_field)) = self.event_type else {
            errors.push(FieldError::new(
                "type",
                "is required: a dotted lowercase name such as auth.login.failure",
            ));
            return None;
        };
        check_type(&event_type, type_field, errors);
        check_not_service(&event_type, type_field, self.source.as_deref(), errors);
        let time = self.time.map_or(received_at, to_stored_precision);
        check_time(time, received_at, errors);
        let actor = self.actor;
        let short = [
            ("source", &self.source),
            ("agent_id", &self.agent_id),
            ("facility", &self.facility),
            ("correlation_id", &self.correlation_id),
            ("actor.user_id", &actor.user_id),
            ("actor.session_id", &actor.session_id),
        ];
        for (field, value) in short {
            check_text(field, value.as_deref(), MAX_SHORT_LEN, errors);
        }
        check_text(
            "actor.user_agent",
            actor.user_agent.as_deref(),
            MAX_USER_AGENT_LEN,
            errors,
        );
        let actor = Actor {
            ip: normalize_ip(actor.ip, self.ip_field, errors),
            ..actor
        };
        check_labels("tags", &self.tags, errors);
        check_labels("compliance", &self.compliance, errors);
        if !errors.is_empty() {
            return None;
        }
        let category = self
            .category
            .unwrap_or_else(|| Category::for_type(&event_type));
        let severity = self
            .severity
            .unwrap_or_else(|| default_severity(&event_type));
        let outcome = self
            .outcome
            .or_else(|| Outcome::for_type(&event_type))
            .or_else(|| outcome_from_data(&self.data));
        let mut compliance = self.compliance;
        for control in category.compliance_controls() {
            if !compliance.iter().any(|c| c == control) {
                compliance.push((*control).to_owned());
            }
        }
        Some(Event {
            id: self.id.unwrap_or_else(|| new_id(received_at)),
            time,
            received_at,
            category,
            severity,
            priority: self.priority.unwrap_or_else(|| severity.into()),
            outcome: outcome.unwrap_or(Outcome::Unknown),
            event_type,
            source: self.source,
            agent_id: self.agent_id,
            actor,
            target: self.target,
            facility: self.facility,
            correlation_id: self.correlation_id,
            data: self.data,
            context: self.context,
            tags: self.tags,
            compliance,
            sealed: None,
            service_record: false,
        })
    }
}

fn fill(
    slot: &mut Option<String>,
    source: &Map<String, Value>,
    keys: &[&str],
    accept: impl Fn(&str) -> Option<String>,
) {
    if slot.is_some() {
        return;
    }
    *slot = keys.iter().find_map(|k| match source.get(*k)? {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_SHORT_LEN => accept(s),
        Value::Number(n) if n.is_u64() || n.is_i64() => accept(&n.to_string()),
        _ => None,
    });
}

fn new_id(received_at: OffsetDateTime) -> Uuid {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        received_at.unix_timestamp().max(0) as u64,
        received_at.nanosecond(),
    );
    Uuid::new_v7(ts)
}

fn check_type(t: &str, field: &str, errors: &mut Vec<FieldError>) {
    if !evident_model::is_type_name(t) {
        errors.push(FieldError::new(
            field,
            format!("{t:?} is not a dotted lowercase name (letters, digits, _ and -, segments joined by dots, at most {MAX_TYPE_LEN} bytes), e.g. auth.login.failure"),
        ));
    }
}

/// A client's event may not pass for one of the service's own records.
fn check_not_service(
    event_type: &str,
    type_field: &str,
    source: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    if service::is_reserved_type(event_type) {
        errors.push(FieldError::new(
            type_field,
            format!("{event_type:?} is reserved for evident's own records; pick another type"),
        ));
    }
    if source.is_some_and(service::is_reserved_source) {
        errors.push(FieldError::new(
            "source",
            "\"evident\" is reserved for evident's own records; name the sending service",
        ));
    }
}

fn check_time(time: OffsetDateTime, received_at: OffsetDateTime, errors: &mut Vec<FieldError>) {
    if time.unix_timestamp() < 0 {
        errors.push(FieldError::new("time", "is before 1970-01-01"));
    } else if time > received_at + MAX_FUTURE_SKEW {
        errors.push(FieldError::new(
            "time",
            "lies more than one day in the future; check the sender's clock",
        ));
    }
}

fn check_text(field: &str, value: Option<&str>, max: usize, errors: &mut Vec<FieldError>) {
    let Some(value) = value else { return };
    if value.len() > max {
        errors.push(FieldError::new(
            field,
            format!("is {} bytes, over the {max}-byte limit", value.len()),
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "contains control characters"));
    }
}

fn normalize_ip(ip: Option<String>, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let text = ip?;
    match text.trim().parse::<IpAddr>() {
        Ok(addr) => Some(addr.to_string()),
        Err(_) => {
            let shown: String = text.chars().take(64).collect();
            errors.push(FieldError::new(
                field,
                format!("{shown:?} is not an IPv4 or IPv6 address"),
            ));
            None
        }
    }
}

fn check_labels(field: &str, labels: &[String], errors: &mut Vec<FieldError>) {
    if labels.len() > MAX_LABELS {
        errors.push(FieldError::new(
            field,
            format!(
                "has {} entries, over the limit of {MAX_LABELS}",
                labels.len()
            ),
        ));
    }
    for label in labels {
        check_text(field, Some(label), MAX_TYPE_LEN, errors);
    }
}

/// The outcome a payload states: a `success` boolean (or `"true"`/`"false"`), else a
/// `result`/`outcome`/`status` word (`failed`) or a result word inside one (`LOGIN_FAILED`),
/// else a result word inside an `action` (`login_failed`, as agents that know no
/// result field write it).
fn outcome_from_data(data: &Map<String, Value>) -> Option<Outcome> {
    match data.get("success") {
        Some(Value::Bool(ok)) => {
            return Some(if *ok {
                Outcome::Success
            } else {
                Outcome::Failure
            });
        }
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => {
            return Some(Outcome::Success);
        }
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => {
            return Some(Outcome::Failure);
        }
        _ => {}
    }
    let text = |k: &str| data.get(k).and_then(Value::as_str);
    ["result", "outcome", "status"]
        .iter()
        .find_map(|k| {
            let s = text(k)?;
            Outcome::parse_alias(s)
                .filter(|o| *o != Outcome::Unknown)
                .or_else(|| result_word_in(s))
        })
        .or_else(|| text("action").and_then(result_word_in))
}

/// The outcome a word of `text` states, words split at anything but letters and digits
/// (`login_failed`, `AUTH-DENIED`). Only words that report a result count: verbs such as
/// `deny` or `fail` and words such as `error` name what an action does or is about as
/// often as how it ended.
fn result_word_in(text: &str) -> Option<Outcome> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|word| match word.to_ascii_lowercase().as_str() {
            "failed" | "failure" | "unsuccessful" | "denied" | "rejected" | "blocked" => {
                Some(Outcome::Failure)
            }
            "success" | "succeeded" | "successful" | "granted" | "allowed" => {
                Some(Outcome::Success)
            }
            _ => None,
        })
}

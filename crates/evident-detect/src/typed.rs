//! Rules matched against an evident event as the pipeline holds it, without turning it
//! back into JSON.
//!
//! Every committed event is in memory as an [`evident_model::Event`] when detection
//! takes it from the committed stream's hub. Parsing its canonical bytes into a
//! `serde_json::Value` for each event cost more than matching the rules did; this view
//! answers the rules' field lookups from the typed event directly and gives exactly the
//! values the JSON view of its canonical encoding gives (tested below): the same names,
//! absent fields absent, times in their canonical text, `data`, `target` and `context`
//! walked as JSON (arrays fanned out, as Sigma does).

use rsigma_eval::{Event as RuleSource, EventValue, JsonEvent};
use serde_json::{Map, Value};
use std::borrow::Cow;
use time::format_description::well_known::Rfc3339;

use crate::fields::{HOUR_FIELD, WEEKDAY_FIELD};

/// Deepest nesting searched by keyword rules (as Sigma's JSON view does).
const MAX_DEPTH: usize = 64;

/// A committed event as rules see it.
pub struct TypedEvent<'a> {
    event: &'a evident_model::Event,
}

impl<'a> TypedEvent<'a> {
    /// Wraps `event`.
    pub fn new(event: &'a evident_model::Event) -> Self {
        Self { event }
    }

    /// The event's time in its canonical text (RFC 3339, UTC).
    fn time_text(t: time::OffsetDateTime) -> String {
        t.format(&Rfc3339).unwrap_or_default()
    }

    /// The value of a top-level field, as its canonical JSON holds it.
    fn top(&self, name: &str) -> Option<EventValue<'a>> {
        let e = self.event;
        let text = |s: &'a str| Some(EventValue::Str(Cow::Borrowed(s)));
        let optional =
            |s: &'a Option<String>| s.as_deref().map(|s| EventValue::Str(Cow::Borrowed(s)));
        let object = |m: &'a Map<String, Value>| (!m.is_empty()).then(|| map_value(m));
        let list = |l: &'a Vec<String>| {
            (!l.is_empty()).then(|| {
                EventValue::Array(
                    l.iter()
                        .map(|s| EventValue::Str(Cow::Borrowed(s.as_str())))
                        .collect(),
                )
            })
        };
        match name {
            "id" => Some(EventValue::Str(Cow::Owned(e.id.to_string()))),
            "time" => Some(EventValue::Str(Cow::Owned(Self::time_text(e.time)))),
            "received_at" => Some(EventValue::Str(Cow::Owned(Self::time_text(e.received_at)))),
            "type" => text(&e.event_type),
            "category" => text(e.category.as_str()),
            "severity" => text(e.severity.as_str()),
            "priority" => text(e.priority.as_str()),
            "outcome" => text(e.outcome.as_str()),
            "source" => optional(&e.source),
            "agent_id" => optional(&e.agent_id),
            "actor" => (!e.actor.is_empty()).then(|| {
                EventValue::Map(
                    self.actor_fields()
                        .map(|(k, v)| (Cow::Borrowed(k), EventValue::Str(Cow::Borrowed(v))))
                        .collect(),
                )
            }),
            "target" => object(&e.target),
            "facility" => optional(&e.facility),
            "correlation_id" => optional(&e.correlation_id),
            "data" => object(&e.data),
            "context" => object(&e.context),
            "tags" => list(&e.tags),
            "compliance" => list(&e.compliance),
            "sealed" => e.sealed.as_ref().map(|_| self.json_field("sealed")),
            "service_record" => e.service_record.then_some(EventValue::Bool(true)),
            _ => None,
        }
    }

    /// The actor's fields that are set, in the order of their names (as JSON objects
    /// hold them).
    fn actor_fields(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        let a = &self.event.actor;
        [
            ("ip", &a.ip),
            ("session_id", &a.session_id),
            ("user_agent", &a.user_agent),
            ("user_id", &a.user_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }

    /// A field of the JSON encoding, for the rare parts this view does not walk itself.
    fn json_field(&self, path: &str) -> EventValue<'static> {
        let json = serde_json::to_value(self.event).unwrap_or(Value::Null);
        JsonEvent::borrow(&json)
            .get_field(path)
            .map_or(EventValue::Null, |v| owned(&v))
    }

    /// Every string value, in the order the JSON view walks them (keys sorted).
    fn visit_strings(&self, visit: &mut dyn FnMut(&str)) {
        let e = self.event;
        for key in TOP_LEVEL {
            match key {
                "actor" => self.actor_fields().for_each(|(_, v)| visit(v)),
                "data" => visit_map(&e.data, visit, MAX_DEPTH - 1),
                "target" => visit_map(&e.target, visit, MAX_DEPTH - 1),
                "context" => visit_map(&e.context, visit, MAX_DEPTH - 1),
                "tags" => e.tags.iter().for_each(|s| visit(s)),
                "compliance" => e.compliance.iter().for_each(|s| visit(s)),
                "sealed" => {
                    if let Some(sealed) = &e.sealed {
                        sealed.fields.values().for_each(|v| visit(v));
                        visit(&sealed.key);
                    }
                }
                "service_record" => {}
                _ => {
                    if let Some(EventValue::Str(s)) = self.top(key) {
                        visit(&s);
                    }
                }
            }
        }
    }

    fn hour(&self) -> i64 {
        i64::from(self.event.time.to_offset(time::UtcOffset::UTC).hour())
    }

    fn weekday(&self) -> &'static str {
        crate::fields::weekday_name(self.event.time)
    }
}

impl RuleSource for TypedEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        match path {
            HOUR_FIELD => return Some(EventValue::Int(self.hour())),
            WEEKDAY_FIELD => return Some(EventValue::Str(Cow::Borrowed(self.weekday()))),
            _ => {}
        }
        let Some((root, rest)) = path.split_once('.') else {
            return self.top(path);
        };
        if path.contains(['[', '\\']) {
            // Array indexes and escapes: Sigma's own JSON walk.
            return self.top(root).map(|_| self.json_field(path));
        }
        let e = self.event;
        let map = match root {
            "data" => &e.data,
            "target" => &e.target,
            "context" => &e.context,
            "actor" => {
                return self
                    .actor_fields()
                    .find(|(k, _)| *k == rest)
                    .map(|(_, v)| EventValue::Str(Cow::Borrowed(v)));
            }
            "sealed" => return e.sealed.as_ref().map(|_| self.json_field(path)),
            _ => return None,
        };
        let keys: Vec<&str> = rest.split('.').collect();
        let (first, more) = keys.split_first()?;
        let mut found = Vec::new();
        collect(map.get(*first)?, more, &mut found);
        match found.len() {
            0 => None,
            1 => found.pop(),
            _ => Some(EventValue::Array(found)),
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let mut any = false;
        self.visit_strings(&mut |s| any = any || pred(s));
        any
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.visit_strings(&mut |s| out.push(Cow::Owned(s.to_owned())));
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.visit_strings(visit);
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(self.event).unwrap_or(Value::Null)
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        let mut keys = Vec::new();
        self.visit_top_level_keys(&mut |k| keys.push(Cow::Owned(k.to_owned())));
        Some(keys)
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        for key in TOP_LEVEL {
            if self.top(key).is_some() {
                visit(key);
            }
        }
        visit(HOUR_FIELD);
        visit(WEEKDAY_FIELD);
        true
    }
}

/// The canonical encoding's top-level keys, sorted (the order of a parsed JSON object).
const TOP_LEVEL: [&str; 20] = [
    "actor",
    "agent_id",
    "category",
    "compliance",
    "context",
    "correlation_id",
    "data",
    "facility",
    "id",
    "outcome",
    "priority",
    "received_at",
    "sealed",
    "service_record",
    "severity",
    "source",
    "tags",
    "target",
    "time",
    "type",
];

/// `map` as an event value, borrowing its strings.
fn map_value(map: &Map<String, Value>) -> EventValue<'_> {
    EventValue::Map(
        map.iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), EventValue::from(v)))
            .collect(),
    )
}

/// Follows `keys` from `value` as Sigma's JSON walk does: through objects by key, over
/// every element of an array met on the way.
fn collect<'a>(value: &'a Value, keys: &[&str], out: &mut Vec<EventValue<'a>>) {
    let Some((key, rest)) = keys.split_first() else {
        out.push(EventValue::from(value));
        return;
    };
    match value {
        Value::Object(map) => {
            if let Some(next) = map.get(*key) {
                collect(next, rest, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect(item, keys, out);
            }
        }
        _ => {}
    }
}

fn visit_map(map: &Map<String, Value>, visit: &mut dyn FnMut(&str), depth: usize) {
    for value in map.values() {
        visit_value(value, visit, depth);
    }
}

fn visit_value(value: &Value, visit: &mut dyn FnMut(&str), depth: usize) {
    if depth == 0 {
        return;
    }
    match value {
        Value::String(s) => visit(s),
        Value::Object(map) => visit_map(map, visit, depth - 1),
        Value::Array(items) => {
            for item in items {
                visit_value(item, visit, depth - 1);
            }
        }
        _ => {}
    }
}

/// `v` with nothing borrowed.
fn owned(v: &EventValue<'_>) -> EventValue<'static> {
    match v {
        EventValue::Str(s) => EventValue::Str(Cow::Owned(s.to_string())),
        EventValue::Int(n) => EventValue::Int(*n),
        EventValue::Float(f) => EventValue::Float(*f),
        EventValue::Bool(b) => EventValue::Bool(*b),
        EventValue::Null => EventValue::Null,
        EventValue::Array(items) => EventValue::Array(items.iter().map(owned).collect()),
        EventValue::Map(entries) => EventValue::Map(
            entries
                .iter()
                .map(|(k, v)| (Cow::Owned(k.to_string()), owned(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evident_model::{EncodedEvent, Sealed};
    use serde_json::json;

    /// An event with every part set: nested data with arrays, target, context, tags,
    /// a sealed record, a service record flag.
    fn full() -> evident_model::Event {
        let mut event: evident_model::Event = serde_json::from_value(json!({
            "id": "0194f1e2-0000-7000-8000-000000000001",
            "time": "2026-03-01T22:15:00.123456Z",
            "received_at": "2026-03-01T22:15:01Z",
            "type": "auth.login.failure", "category": "authentication",
            "severity": "high", "priority": "high", "outcome": "failure",
            "source": "mes-web", "agent_id": "line-3",
            "actor": {"user_id": "u-7", "ip": "10.0.0.9"},
            "target": {"resource": "/api/orders", "station_id": "ST-4"},
            "facility": "plant-a", "correlation_id": "req-1",
            "data": {"n": 42, "f": 1.5, "ok": true, "none": null, "s": "x y",
                     "nested": {"k": "v", "deep": {"z": 0}},
                     "list": [{"k": "a"}, {"k": "b"}, 3, "plain"]},
            "context": {"host": "h1"},
            "tags": ["t1", "t2"], "compliance": ["nist:PR.AC-1"],
        }))
        .unwrap();
        event.sealed = Some(Sealed {
            key: "subject-1".into(),
            fields: [("actor.user_id".to_string(), "c2VhbGVk".to_string())].into(),
            erased: false,
        });
        event.service_record = true;
        event
    }

    fn minimal() -> evident_model::Event {
        serde_json::from_value(json!({
            "id": "0194f1e2-0000-7000-8000-000000000002",
            "time": "2026-03-02T00:00:00Z", "received_at": "2026-03-02T00:00:00Z",
            "type": "a.b", "category": "custom", "severity": "info",
            "priority": "info", "outcome": "unknown"
        }))
        .unwrap()
    }

    const PATHS: &[&str] = &[
        "id",
        "time",
        "received_at",
        "type",
        "category",
        "severity",
        "priority",
        "outcome",
        "source",
        "agent_id",
        "actor",
        "actor.user_id",
        "actor.ip",
        "actor.session_id",
        "actor.user_id.x",
        "target",
        "target.station_id",
        "target.missing",
        "facility",
        "correlation_id",
        "data",
        "data.n",
        "data.f",
        "data.ok",
        "data.none",
        "data.s",
        "data.nested",
        "data.nested.k",
        "data.nested.deep.z",
        "data.list",
        "data.list.k",
        "data.list[1].k",
        "data.list[-1]",
        "data.missing",
        "context.host",
        "tags",
        "tags.x",
        "compliance",
        "sealed",
        "sealed.key",
        "sealed.fields",
        "service_record",
        "type.x",
        "nothing",
        "nothing.at.all",
        "",
        ".",
        "data.",
        "data..n",
    ];

    /// The typed view answers every lookup as the JSON of the canonical encoding does:
    /// a difference would be a rule that fires on one and not on the other.
    #[test]
    fn every_field_reads_as_in_the_canonical_json() {
        for event in [full(), minimal()] {
            let encoded = EncodedEvent::new(event);
            let json: Value = serde_json::from_slice(&encoded.bytes).unwrap();
            let from_json = crate::fields::RuleEvent::new(&json);
            let typed = TypedEvent::new(&encoded.event);
            for path in PATHS.iter().chain(&[HOUR_FIELD, WEEKDAY_FIELD]) {
                assert_eq!(
                    typed.get_field(path),
                    from_json.get_field(path),
                    "field {path:?}"
                );
            }
            let mut strings = Vec::new();
            typed.visit_string_values(&mut |s| strings.push(s.to_owned()));
            let mut expected = Vec::new();
            from_json.visit_string_values(&mut |s| expected.push(s.to_owned()));
            assert_eq!(strings, expected, "keyword search sees the same strings");
            let kind = encoded.event.event_type.clone();
            assert!(typed.any_string_value(&|s| s == kind));
            assert!(!typed.any_string_value(&|s| s == "not there"));
            assert_eq!(typed.to_json(), json);
            assert_eq!(
                typed.top_level_keys(),
                from_json.top_level_keys(),
                "top-level keys"
            );
        }
    }
}

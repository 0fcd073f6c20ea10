//! The view of an event that Sigma rules match against.
//!
//! Sigma rules name fields the way their log sources do (`User`, `src_ip`, `EventID`,
//! `Image`). evident keeps its events in its own model (`actor.user_id`, `data.*`), so
//! the detector applies a field mapping ([`MAPPING`], a pySigma-style processing
//! pipeline) to every rule: a rule field with a mapping reads the evident path, any
//! other name is looked up as written, where a dotted name (`data.station_id`) walks
//! into nested objects. Windows event log records rendered as JSON (`Event.System`,
//! `Event.EventData`, as exported from EVTX and found in Sigma's regression data) are
//! flattened first: `EventData` fields and the common `System` fields (`EventID`,
//! `Channel`, `Provider_Name`, `Computer`, ...) become top-level fields.

use rsigma_eval::{Event, EventValue, JsonEvent};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;

/// The view field naming the event's Sigma log source product. evident's own events do
/// not carry it and count as product `evident`; flattened Windows records carry
/// `windows`. A rule whose logsource names another product is not evaluated on the
/// event (rules with no product are), so a `product: zeek` rule whose condition is
/// `not selection` does not fire on every event that lacks Zeek's fields.
pub const PRODUCT_FIELD: &str = "@product";

/// The product evident's own events count as.
pub const EVIDENT_PRODUCT: &str = "evident";

/// Sigma field names mapped onto evident's event model, as a processing pipeline.
///
/// | Sigma field names | evident field |
/// |---|---|
/// | `User`, `user`, `UserName`, `user.name`, `TargetUserName`, `SubjectUserName`, `AccountName` | `actor.user_id` |
/// | `src_ip`, `SourceIp`, `SourceAddress`, `IpAddress`, `ClientIP`, `c-ip`, `source.ip` | `actor.ip` |
/// | `UserAgent`, `c-useragent`, `user_agent.original` | `actor.user_agent` |
/// | `Hostname`, `ComputerName`, `host.name` | `agent_id` |
/// | `EventType`, `event.action` | `type` |
/// | `Outcome`, `event.outcome` | `outcome` |
///
/// A name that is also a field of other sources (`User`, `IpAddress`, ...) is looked up
/// in both places. Rules for Windows log sources are left unmapped.
pub const MAPPING: &str = r#"
name: evident field names
priority: 10
transformations:
  - id: evident_fields
    type: field_name_mapping
    # Windows rules keep their own field names: a Windows record has no actor.user_id,
    # and `User: null` must not match every record through the alias.
    rule_conditions:
      - id: windows
        type: logsource
        product: windows
    rule_cond_expression: not windows
    mapping:
      User: [User, actor.user_id]
      user: [user, actor.user_id]
      UserName: [UserName, actor.user_id]
      user.name: actor.user_id
      TargetUserName: [TargetUserName, actor.user_id]
      SubjectUserName: [SubjectUserName, actor.user_id]
      AccountName: [AccountName, actor.user_id]
      src_ip: [src_ip, actor.ip]
      SourceIp: [SourceIp, actor.ip]
      SourceAddress: [SourceAddress, actor.ip]
      IpAddress: [IpAddress, actor.ip]
      ClientIP: [ClientIP, actor.ip]
      c-ip: [c-ip, actor.ip]
      source.ip: actor.ip
      UserAgent: [UserAgent, actor.user_agent]
      c-useragent: [c-useragent, actor.user_agent]
      user_agent.original: actor.user_agent
      Hostname: [Hostname, agent_id]
      ComputerName: [ComputerName, agent_id]
      host.name: agent_id
      EventType: [EventType, type]
      event.action: type
      Outcome: [Outcome, outcome]
      event.outcome: outcome
"#;

/// The view of `event` rules match against: a Windows event log record flattened, any
/// other JSON as it is.
pub fn view(event: &Value) -> std::borrow::Cow<'_, Value> {
    match windows_record(event) {
        Some(flat) => std::borrow::Cow::Owned(Value::Object(flat)),
        None => std::borrow::Cow::Borrowed(event),
    }
}

/// `Event.System` + `Event.EventData` (or `UserData`) as one flat object, if `event` is
/// a Windows event log record.
fn windows_record(event: &Value) -> Option<Map<String, Value>> {
    let record = event.get("Event")?.as_object()?;
    let system = record.get("System")?.as_object()?;
    let mut flat = Map::new();
    flat.insert(PRODUCT_FIELD.into(), Value::String("windows".into()));
    for (key, value) in system {
        match (key.as_str(), value) {
            // <Provider Name=".." Guid=".."/>: Sigma calls these Provider_Name, Provider_Guid.
            (_, Value::Object(inner)) => {
                let attributes = inner.get("#attributes").and_then(Value::as_object);
                for (name, v) in attributes.into_iter().flatten() {
                    flat.insert(format!("{key}_{name}"), v.clone());
                }
                if key == "TimeCreated"
                    && let Some(t) = attributes.and_then(|a| a.get("SystemTime"))
                {
                    flat.insert("TimeCreated".into(), t.clone());
                }
            }
            _ => {
                flat.insert(key.clone(), value.clone());
            }
        }
    }
    for section in ["EventData", "UserData"] {
        let Some(data) = record.get(section) else {
            continue;
        };
        flatten_data(data, &mut flat);
    }
    Some(flat)
}

/// EventData fields become top-level fields; UserData's single wrapper element is
/// looked through; attribute maps are skipped.
fn flatten_data(data: &Value, flat: &mut Map<String, Value>) {
    let Some(fields) = data.as_object() else {
        return;
    };
    for (key, value) in fields {
        if key == "#attributes" {
            continue;
        }
        match value {
            Value::Object(inner) if !inner.contains_key("#text") => flatten_data(value, flat),
            Value::Object(inner) => {
                flat.insert(key.clone(), inner["#text"].clone());
            }
            _ => {
                flat.insert(key.clone(), value.clone());
            }
        }
        // Some providers name data fields with spaces ("Threat Name"); Sigma's Windows
        // rules write them without ("ThreatName").
        if key.contains(' ')
            && let Some(v) = flat.get(key.as_str()).cloned()
        {
            flat.entry(key.replace(' ', "")).or_insert(v);
        }
    }
}

/// Field rules may use for the hour of the event's time (UTC), 0–23.
pub const HOUR_FIELD: &str = "@hour";
/// Field rules may use for the weekday of the event's time (UTC): `monday` .. `sunday`.
pub const WEEKDAY_FIELD: &str = "@weekday";

/// An event as rules see it: the JSON view, plus [`HOUR_FIELD`] and [`WEEKDAY_FIELD`]
/// computed from its `time` when a rule asks (off-hours rules).
pub struct RuleEvent<'a> {
    inner: JsonEvent<'a>,
    time: Option<&'a str>,
}

impl<'a> RuleEvent<'a> {
    /// Wraps a view made by [`view`].
    pub fn new(view: &'a Value) -> Self {
        Self {
            time: view.get("time").and_then(Value::as_str),
            inner: JsonEvent::borrow(view),
        }
    }

    /// The hour of an RFC 3339 UTC time (`2026-03-01T10:00:00Z` → 10).
    fn hour(&self) -> Option<i64> {
        let t = self.time?;
        let digits = t.get(11..13)?;
        (t.ends_with('Z') || t.ends_with("+00:00"))
            .then(|| digits.parse().ok())
            .flatten()
    }

    fn weekday(&self) -> Option<&'static str> {
        let t = time::OffsetDateTime::parse(self.time?, &Rfc3339).ok()?;
        Some(weekday_name(t))
    }
}

/// The [`WEEKDAY_FIELD`] value of `t`: its weekday in UTC, `monday` .. `sunday`.
pub(crate) fn weekday_name(t: time::OffsetDateTime) -> &'static str {
    match t.to_offset(time::UtcOffset::UTC).weekday() {
        time::Weekday::Monday => "monday",
        time::Weekday::Tuesday => "tuesday",
        time::Weekday::Wednesday => "wednesday",
        time::Weekday::Thursday => "thursday",
        time::Weekday::Friday => "friday",
        time::Weekday::Saturday => "saturday",
        time::Weekday::Sunday => "sunday",
    }
}

impl Event for RuleEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        match path {
            HOUR_FIELD => self.hour().map(EventValue::Int),
            WEEKDAY_FIELD => self
                .weekday()
                .map(|d| EventValue::Str(std::borrow::Cow::Borrowed(d))),
            _ => self.inner.get_field(path),
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.inner.any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<std::borrow::Cow<'_, str>> {
        self.inner.all_string_values()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.inner.visit_string_values(visit)
    }

    fn to_json(&self) -> Value {
        self.inner.to_json()
    }

    fn top_level_keys(&self) -> Option<Vec<std::borrow::Cow<'_, str>>> {
        let mut keys = self.inner.top_level_keys()?;
        if self.time.is_some() {
            keys.push(std::borrow::Cow::Borrowed(HOUR_FIELD));
            keys.push(std::borrow::Cow::Borrowed(WEEKDAY_FIELD));
        }
        Some(keys)
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        if !self.inner.visit_top_level_keys(visit) {
            return false;
        }
        if self.time.is_some() {
            visit(HOUR_FIELD);
            visit(WEEKDAY_FIELD);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn windows_records_are_flattened_as_sigma_expects() {
        let record = json!({"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "5770385F"}},
                "EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "ws1",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-04-20T10:00:35Z"}}
            },
            "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd /c whoami", "Threat Name": "EICAR"}
        }});
        let flat = view(&record);
        assert_eq!(flat["EventID"], 1);
        assert_eq!(flat[PRODUCT_FIELD], "windows");
        assert_eq!(flat["Provider_Name"], "Microsoft-Windows-Sysmon");
        assert_eq!(flat["Channel"], "Microsoft-Windows-Sysmon/Operational");
        assert_eq!(flat["TimeCreated"], "2026-04-20T10:00:35Z");
        assert_eq!(flat["Image"], "C:\\Windows\\System32\\cmd.exe");
        assert_eq!(flat["CommandLine"], "cmd /c whoami");
        assert_eq!(
            flat["ThreatName"], "EICAR",
            "spaces dropped, as Sigma writes them"
        );
        assert_eq!(flat["Threat Name"], "EICAR");
    }

    #[test]
    fn other_json_is_left_as_it_is() {
        let event = json!({"type": "auth.login.failure", "actor": {"user_id": "alice"}});
        assert_eq!(*view(&event), event);
    }
}

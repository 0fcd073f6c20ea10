//! Subscription filters of the live stream: which committed events a subscriber gets.
//!
//! A filter is read from a JSON object (a WebSocket `subscribe` message) or from query
//! parameters (SSE, `evident tail`); both go through [`Filter::set`], so the two ways
//! accept the same names and values and refuse the same mistakes with the same words.
//! Every condition given must hold; a list of values holds when any of them does.

use evident_model::{Category, Event, Severity};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Filter names a subscriber may use, as error messages list them.
pub const NAMES: &str = "type, category, min_severity, severity, user, agent, facility, \
                         source_ip, findings, data.<path>";

/// A filter that cannot be used: names the filter and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter `{name}`: {reason}")]
pub struct FilterError {
    /// The filter as the client named it.
    pub name: String,
    /// What was wrong with it.
    pub reason: String,
}

impl FilterError {
    fn new(name: &str, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// An event type pattern: exact, or a dotted prefix ending in `*` (`auth.*`, or `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum TypePattern {
    Exact(String),
    Prefix(String),
}

impl TypePattern {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        if text.trim_end_matches('*').contains('*') || text.ends_with("**") {
            return Err(format!("`{text}` has `*` other than at its end"));
        }
        if let Some(prefix) = text.strip_suffix('*') {
            if !(prefix.is_empty() || prefix.ends_with('.')) {
                return Err(format!(
                    "`{text}`: a wildcard stands for whole name parts (write `{prefix}.*`)"
                ));
            }
            return Ok(Self::Prefix(prefix.to_owned()));
        }
        if text.is_empty() {
            return Err("an empty event type matches nothing".into());
        }
        Ok(Self::Exact(text))
    }

    fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Exact(name) => event_type == name,
            Self::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Exact(name) => name.clone(),
            Self::Prefix(prefix) => format!("{prefix}*"),
        }
    }
}

/// An address, or a network in CIDR notation; or, where addresses are sealed, the
/// pseudonym of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Network {
    Range { addr: IpAddr, prefix: u8 },
    Pseudonym(String),
}

impl Network {
    fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("ps_") {
            return Ok(Self::Pseudonym(text.to_owned()));
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self::Range { addr, prefix })
    }

    fn contains(&self, text: &str) -> bool {
        let (net, prefix) = match self {
            Self::Pseudonym(p) => return p == text,
            Self::Range { addr, prefix } => (*addr, *prefix),
        };
        let Ok(addr) = text.trim().parse::<IpAddr>() else {
            return false;
        };
        let (net, addr, bits) = match (net, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(a)) << 96,
                prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), prefix),
            _ => return false,
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(bits))
        };
        net & mask == addr & mask
    }

    fn text(&self) -> String {
        match self {
            Self::Pseudonym(p) => p.clone(),
            Self::Range { addr, prefix } => {
                let max = if addr.is_ipv4() { 32 } else { 128 };
                if *prefix == max {
                    addr.to_string()
                } else {
                    format!("{addr}/{prefix}")
                }
            }
        }
    }

    /// The one address this stands for, if it is one address.
    fn single(&self) -> Option<IpAddr> {
        match self {
            Self::Range { addr, prefix } if *prefix == if addr.is_ipv4() { 32 } else { 128 } => {
                Some(*addr)
            }
            _ => None,
        }
    }
}

/// What a subscriber wants to see. The default takes every event and every finding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    types: Vec<TypePattern>,
    categories: Vec<Category>,
    min_severity: Option<Severity>,
    severities: Vec<Severity>,
    users: Vec<String>,
    agents: Vec<String>,
    facilities: Vec<String>,
    source_ips: Vec<Network>,
    data: Vec<(Vec<String>, Vec<Value>)>,
    no_findings: bool,
}

impl Filter {
    /// A filter from a JSON object of filters (`{"type": "auth.*", "min_severity":
    /// "high"}`); each value a string (or number, for `data.` paths) or a list of them.
    pub fn from_json(filters: &Map<String, Value>) -> Result<Self, FilterError> {
        let mut filter = Self::default();
        for (name, value) in filters {
            if value.is_null() {
                continue;
            }
            let values: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            filter.set(name, &values)?;
        }
        Ok(filter)
    }

    /// A filter from query parameters; a name given twice takes both values. Names that
    /// are not filters are left to the caller (`since_seq`, `token`, ...): pass only
    /// the pairs that are filters.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, FilterError> {
        let mut filter = Self::default();
        for (name, value) in pairs {
            let value = Value::String(value.to_owned());
            filter.set(name, &[&value])?;
        }
        Ok(filter)
    }

    /// Adds the condition `name` with `values` (any of which may hold).
    pub fn set(&mut self, name: &str, values: &[&Value]) -> Result<(), FilterError> {
        if values.is_empty() {
            return Err(FilterError::new(name, "an empty list matches nothing"));
        }
        if let Some(path) = name.strip_prefix("data.") {
            let path: Vec<String> = path.split('.').map(str::to_owned).collect();
            if path.iter().any(String::is_empty) {
                return Err(FilterError::new(name, "the data path has an empty part"));
            }
            let values = values
                .iter()
                .map(|v| match v {
                    Value::Object(_) | Value::Array(_) => Err(FilterError::new(
                        name,
                        "compare with a string, number, boolean or null",
                    )),
                    v => Ok((*v).clone()),
                })
                .collect::<Result<_, _>>()?;
            self.data.push((path, values));
            return Ok(());
        }
        let texts = values
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                Value::Bool(_) if canonical(name) == Some("findings") => {
                    Ok(if v == &&Value::Bool(true) {
                        "true"
                    } else {
                        "false"
                    })
                }
                _ => Err(FilterError::new(
                    name,
                    "must be a string or a list of strings",
                )),
            })
            .collect::<Result<Vec<&str>, _>>()?;
        let error = |reason: String| FilterError::new(name, reason);
        match canonical(name) {
            Some("type") => {
                for t in texts {
                    self.types.push(TypePattern::parse(t).map_err(error)?);
                }
            }
            Some("category") => {
                for c in texts {
                    self.categories.push(
                        Category::parse(&c.trim().to_ascii_lowercase())
                            .ok_or_else(|| error(format!("`{c}` is not a category")))?,
                    );
                }
            }
            Some("min_severity") => {
                let [one] = texts.as_slice() else {
                    return Err(error("takes one severity".into()));
                };
                self.min_severity = Some(severity(one).map_err(error)?);
            }
            Some("severity") => {
                for s in texts {
                    self.severities.push(severity(s).map_err(error)?);
                }
            }
            Some("user") => self.users.extend(texts.iter().map(|s| (*s).to_owned())),
            Some("agent") => self.agents.extend(texts.iter().map(|s| (*s).to_owned())),
            Some("facility") => self
                .facilities
                .extend(texts.iter().map(|s| (*s).to_owned())),
            Some("source_ip") => {
                for ip in texts {
                    self.source_ips.push(Network::parse(ip).map_err(error)?);
                }
            }
            Some("findings") => {
                let [one] = texts.as_slice() else {
                    return Err(error("takes one value, true or false".into()));
                };
                self.no_findings = match *one {
                    "true" | "1" | "yes" => false,
                    "false" | "0" | "no" => true,
                    other => return Err(error(format!("`{other}` is not true or false"))),
                };
            }
            _ => {
                return Err(FilterError::new(
                    name,
                    format!("not a filter; filters are {NAMES}"),
                ));
            }
        }
        Ok(())
    }

    /// Whether `event` passes every condition.
    pub fn matches(&self, event: &Event) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t.matches(&event.event_type)))
            && (self.categories.is_empty() || self.categories.contains(&event.category))
            && self.min_severity.is_none_or(|min| event.severity >= min)
            && (self.severities.is_empty() || self.severities.contains(&event.severity))
            && any_of(&self.users, event.actor.user_id.as_deref())
            && any_of(&self.agents, event.agent_id.as_deref())
            && any_of(&self.facilities, event.facility.as_deref())
            && (self.source_ips.is_empty()
                || event
                    .actor
                    .ip
                    .as_deref()
                    .is_some_and(|ip| self.source_ips.iter().any(|n| n.contains(ip))))
            && self.data.iter().all(|(path, values)| {
                lookup(&event.data, path)
                    .is_some_and(|found| values.iter().any(|want| same_value(found, want)))
            })
    }

    /// Whether a finding of `severity` in `facility` passes: findings are filtered by
    /// facility and severity only (they have no type, user or data of their own).
    pub fn matches_finding(&self, severity: Severity, facility: Option<&str>) -> bool {
        !self.no_findings
            && self.min_severity.is_none_or(|min| severity >= min)
            && (self.severities.is_empty() || self.severities.contains(&severity))
            && any_of(&self.facilities, facility)
    }

    /// Rewrites the values compared with a sealed field (`actor.user_id`, `actor.ip`,
    /// `data.<path>`; others are left alone) into what sealed events hold there, with
    /// `seal`, which gets each value not already a pseudonym (`ps_…`). A network cannot
    /// match pseudonyms: a `source_ip` range on sealed addresses is refused.
    pub fn seal_values(
        &mut self,
        field: &str,
        seal: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<(), FilterError> {
        let mut apply = |name: &str, value: &mut String| -> Result<(), FilterError> {
            if !value.starts_with("ps_") {
                *value = seal(value).map_err(|reason| FilterError::new(name, reason))?;
            }
            Ok(())
        };
        match field {
            "actor.user_id" => {
                for user in &mut self.users {
                    apply("user", user)?;
                }
            }
            "actor.ip" => {
                for network in &mut self.source_ips {
                    if let Network::Pseudonym(_) = network {
                        continue;
                    }
                    let Some(addr) = network.single() else {
                        return Err(FilterError::new(
                            "source_ip",
                            format!(
                                "`{}`: actor.ip is personal data, stored as pseudonyms, which no network can match; filter by one address",
                                network.text()
                            ),
                        ));
                    };
                    let mut text = addr.to_string();
                    apply("source_ip", &mut text)?;
                    *network = Network::Pseudonym(text);
                }
            }
            path => {
                let Some(data_path) = path.strip_prefix("data.") else {
                    return Ok(());
                };
                let name = path.to_owned();
                for (at, values) in &mut self.data {
                    if at.join(".") != data_path {
                        continue;
                    }
                    for value in values.iter_mut() {
                        let mut text = match &*value {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        apply(&name, &mut text)?;
                        *value = Value::String(text);
                    }
                }
            }
        }
        Ok(())
    }

    /// The filter as a JSON object, with names in their canonical spelling (what
    /// `subscription_updated` echoes).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        let list = |items: Vec<String>| -> Value {
            match items.len() {
                1 => Value::String(items.into_iter().next().unwrap_or_default()),
                _ => Value::Array(items.into_iter().map(Value::String).collect()),
            }
        };
        if !self.types.is_empty() {
            out.insert(
                "type".into(),
                list(self.types.iter().map(TypePattern::text).collect()),
            );
        }
        if !self.categories.is_empty() {
            out.insert(
                "category".into(),
                list(
                    self.categories
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect(),
                ),
            );
        }
        if let Some(min) = self.min_severity {
            out.insert("min_severity".into(), Value::String(min.as_str().into()));
        }
        if !self.severities.is_empty() {
            out.insert(
                "severity".into(),
                list(
                    self.severities
                        .iter()
                        .map(|s| s.as_str().to_owned())
                        .collect(),
                ),
            );
        }
        for (name, values) in [
            ("user", &self.users),
            ("agent", &self.agents),
            ("facility", &self.facilities),
        ] {
            if !values.is_empty() {
                out.insert(name.into(), list(values.clone()));
            }
        }
        if !self.source_ips.is_empty() {
            out.insert(
                "source_ip".into(),
                list(self.source_ips.iter().map(Network::text).collect()),
            );
        }
        for (path, values) in &self.data {
            let value = match values.as_slice() {
                [one] => one.clone(),
                many => Value::Array(many.to_vec()),
            };
            out.insert(format!("data.{}", path.join(".")), value);
        }
        if self.no_findings {
            out.insert("findings".into(), Value::Bool(false));
        }
        Value::Object(out)
    }
}

/// The canonical name of a filter, accepting the seeds' spellings (`eventType`,
/// `userId`, `sourceIp`, ...).
fn canonical(name: &str) -> Option<&'static str> {
    Some(match name {
        "type" | "event_type" | "eventType" => "type",
        "category" => "category",
        "min_severity" | "minSeverity" => "min_severity",
        "severity" => "severity",
        "user" | "user_id" | "userId" | "actor.user_id" => "user",
        "agent" | "agent_id" | "agentId" => "agent",
        "facility" => "facility",
        "source_ip" | "sourceIp" | "ip" | "actor.ip" => "source_ip",
        "findings" => "findings",
        _ => return None,
    })
}

fn severity(text: &str) -> Result<Severity, String> {
    Severity::parse_alias(text)
        .ok_or_else(|| format!("`{text}` is not a severity (critical, high, medium, low, info)"))
}

fn any_of(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
}

fn lookup<'a>(data: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(data.get(first)?, |value, key| value.as_object()?.get(key))
}

/// Equal as JSON, or the filter's text equals a number or boolean's text (query
/// parameters are always text).
fn same_value(found: &Value, want: &Value) -> bool {
    if found == want {
        return true;
    }
    match (found, want) {
        (Value::Number(n), Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .is_some_and(|t| Some(t) == n.as_f64()),
        (Value::Bool(b), Value::String(text)) => text.trim() == if *b { "true" } else { "false" },
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(value: Value) -> Event {
        let mut base = json!({
            "id": "0194f1e2-0000-7000-8000-000000000000",
            "time": "2026-01-01T00:00:00Z",
            "received_at": "2026-01-01T00:00:00Z",
            "type": "auth.login.failure",
            "category": "authentication",
            "severity": "medium",
            "priority": "medium",
            "outcome": "failure",
            "actor": {"user_id": "alice", "ip": "10.1.2.3"},
            "agent_id": "mes-web",
            "facility": "plant-a",
            "data": {"station": {"line": 3}, "reason": "bad_password", "retry": true}
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut base, value) {
            base.extend(extra);
        }
        serde_json::from_value(base).unwrap()
    }

    fn filter(value: Value) -> Result<Filter, FilterError> {
        Filter::from_json(value.as_object().unwrap())
    }

    #[test]
    fn every_filter_selects_what_it_names() {
        let e = event(json!({}));
        for (yes, no) in [
            (
                json!({"type": "auth.login.failure"}),
                json!({"type": "auth.login"}),
            ),
            (json!({"type": "auth.*"}), json!({"type": "station.*"})),
            (json!({"type": "*"}), json!({"type": ["a.b", "c.*"]})),
            (
                json!({"category": "authentication"}),
                json!({"category": "network"}),
            ),
            (
                json!({"min_severity": "medium"}),
                json!({"min_severity": "high"}),
            ),
            (
                json!({"severity": ["warn", "low"]}),
                json!({"severity": "info"}),
            ),
            (json!({"user": "alice"}), json!({"user": "bob"})),
            (json!({"agent": "mes-web"}), json!({"agent": "plc-gw"})),
            (
                json!({"facility": ["plant-b", "plant-a"]}),
                json!({"facility": "plant-b"}),
            ),
            (
                json!({"source_ip": "10.1.0.0/16"}),
                json!({"source_ip": "10.2.0.0/16"}),
            ),
            (
                json!({"source_ip": "10.1.2.3"}),
                json!({"sourceIp": "10.1.2.4"}),
            ),
            (
                json!({"data.station.line": 3}),
                json!({"data.station.line": 4}),
            ),
            (
                json!({"data.station.line": "3"}),
                json!({"data.missing": "3"}),
            ),
            (
                json!({"data.reason": "bad_password"}),
                json!({"data.reason": "locked"}),
            ),
            (json!({"data.retry": true}), json!({"data.retry": false})),
            (
                json!({"eventType": "auth.login.failure", "userId": "alice"}),
                json!({"userId": "alice", "eventType": "x.y"}),
            ),
        ] {
            assert!(
                filter(yes.clone()).unwrap().matches(&e),
                "{yes} should match"
            );
            assert!(
                !filter(no.clone()).unwrap().matches(&e),
                "{no} should not match"
            );
        }
        assert!(Filter::default().matches(&e), "no filter takes everything");
    }

    #[test]
    fn an_event_without_the_field_does_not_match_a_filter_on_it() {
        let bare = event(json!({"actor": {}, "agent_id": null, "facility": null}));
        for f in [
            json!({"user": "alice"}),
            json!({"source_ip": "0.0.0.0/0"}),
            json!({"facility": "plant-a"}),
        ] {
            assert!(!filter(f.clone()).unwrap().matches(&bare), "{f}");
        }
    }

    #[test]
    fn findings_are_filtered_by_severity_and_facility_or_left_out() {
        let f = filter(json!({"min_severity": "high", "facility": "plant-a"})).unwrap();
        assert!(f.matches_finding(Severity::Critical, Some("plant-a")));
        assert!(!f.matches_finding(Severity::Medium, Some("plant-a")));
        assert!(!f.matches_finding(Severity::High, Some("plant-b")));
        assert!(!f.matches_finding(Severity::High, None));
        let none = filter(json!({"findings": false})).unwrap();
        assert!(!none.matches_finding(Severity::Critical, None));
        assert!(none.matches(&event(json!({}))));
    }

    #[test]
    fn mistakes_name_the_filter_and_what_was_wrong() {
        for (bad, name, words) in [
            (
                json!({"colour": "red"}),
                "colour",
                "not a filter; filters are type",
            ),
            (json!({"type": "auth*"}), "type", "whole name parts"),
            (json!({"type": "a.*.b"}), "type", "other than at its end"),
            (json!({"category": "weather"}), "category", "not a category"),
            (
                json!({"min_severity": "huge"}),
                "min_severity",
                "not a severity",
            ),
            (
                json!({"min_severity": ["high", "low"]}),
                "min_severity",
                "takes one severity",
            ),
            (
                json!({"source_ip": "10.0.0.0/33"}),
                "source_ip",
                "prefix length must be 0 to 32",
            ),
            (
                json!({"source_ip": "plant"}),
                "source_ip",
                "not an IP address",
            ),
            (json!({"user": 42}), "user", "must be a string"),
            (json!({"user": []}), "user", "empty list"),
            (json!({"data.": "x"}), "data.", "empty part"),
            (
                json!({"data.a": {"b": 1}}),
                "data.a",
                "compare with a string",
            ),
            (
                json!({"findings": "maybe"}),
                "findings",
                "not true or false",
            ),
        ] {
            let error = filter(bad.clone()).unwrap_err();
            assert_eq!(error.name, name, "{bad}");
            assert!(error.to_string().contains(words), "{bad}: {error}");
        }
    }

    #[test]
    fn query_pairs_and_json_make_the_same_filter() {
        let pairs = Filter::from_pairs([
            ("type", "auth.*"),
            ("type", "station.operation"),
            ("min_severity", "warn"),
            ("data.station.line", "3"),
            ("findings", "false"),
        ])
        .unwrap();
        let json = filter(json!({
            "type": ["auth.*", "station.operation"],
            "min_severity": "medium",
            "data.station.line": "3",
            "findings": false
        }))
        .unwrap();
        assert_eq!(pairs, json);
        assert_eq!(
            pairs.to_json(),
            json!({"type": ["auth.*", "station.operation"], "min_severity": "medium",
                   "data.station.line": "3", "findings": false})
        );
    }

    #[test]
    fn filters_on_sealed_fields_compare_pseudonyms() {
        let mut f = filter(
            json!({"user": ["alice", "ps_known"], "source_ip": "10.1.2.3",
                                  "data.email": "a@b.c", "data.other": "kept"}),
        )
        .unwrap();
        let mut seal = |v: &str| Ok(format!("ps_{v}"));
        for field in [
            "actor.user_id",
            "actor.ip",
            "data.email",
            "actor.session_id",
        ] {
            f.seal_values(field, &mut seal).unwrap();
        }
        assert_eq!(
            f.to_json(),
            json!({"user": ["ps_alice", "ps_known"], "source_ip": "ps_10.1.2.3",
                   "data.email": "ps_a@b.c", "data.other": "kept"})
        );
        let sealed = event(
            json!({"actor": {"user_id": "ps_alice", "ip": "ps_10.1.2.3"},
                                  "data": {"email": "ps_a@b.c", "other": "kept"}}),
        );
        assert!(f.matches(&sealed));
        let mut range = filter(json!({"source_ip": "10.0.0.0/8"})).unwrap();
        let error = range.seal_values("actor.ip", &mut seal).unwrap_err();
        assert!(error.reason.contains("filter by one address"), "{error}");
        let mut refused = filter(json!({"user": "alice"})).unwrap();
        let error = refused
            .seal_values("actor.user_id", &mut |_| Err("personal data".into()))
            .unwrap_err();
        assert_eq!(error.to_string(), "filter `user`: personal data");
    }

    #[test]
    fn a_filter_echoed_back_reads_as_the_same_filter() {
        let f = filter(
            json!({"eventType": "auth.*", "sourceIp": "10.0.0.0/8", "severity": "warning",
                              "data.n": 5, "userId": ["a", "b"]}),
        )
        .unwrap();
        let echoed = f.to_json();
        assert_eq!(filter(echoed).unwrap(), f);
    }

    proptest! {
        #[test]
        fn any_filter_object_is_read_or_refused_without_panicking(
            name in prop_oneof![
                Just("type".to_owned()), Just("category".to_owned()), Just("min_severity".to_owned()),
                Just("source_ip".to_owned()), Just("user".to_owned()), Just("findings".to_owned()),
                "data\\.[a-z.]{0,6}", "[a-zA-Z_.]{0,10}"
            ],
            value in prop_oneof![
                "[ -~]{0,20}".prop_map(Value::String),
                any::<i64>().prop_map(|n| json!(n)),
                any::<bool>().prop_map(Value::Bool),
                prop::collection::vec("[ -~]{0,8}", 0..3).prop_map(|v| json!(v)),
                Just(json!({"a": 1})),
            ],
        ) {
            let mut object = Map::new();
            object.insert(name, value);
            if let Ok(f) = Filter::from_json(&object) {
                // What is accepted matches or not, and echoes back to itself.
                let _ = f.matches(&event(json!({})));
                prop_assert_eq!(Filter::from_json(f.to_json().as_object().unwrap()).unwrap(), f);
            }
        }

        #[test]
        fn a_network_contains_exactly_the_addresses_sharing_its_prefix(
            net in any::<u32>(), addr in any::<u32>(), prefix in 0u8..=32,
        ) {
            let n = Network::parse(&format!("{}/{prefix}", std::net::Ipv4Addr::from(net))).unwrap();
            let shift = 32 - u32::from(prefix);
            let same = prefix == 0 || (net >> shift) == (addr >> shift);
            prop_assert_eq!(n.contains(&std::net::Ipv4Addr::from(addr).to_string()), same);
        }
    }
}

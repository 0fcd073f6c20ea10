//! Query-string parameters → typed store queries, with errors that name the parameter.

use crate::error::ApiError;
use evident_model::{Category, Outcome, Severity, unix_micros};
use evident_store::query::{DataFilter, GroupField, TypeFilter};
use evident_store::{Cursor, EventQuery, FindingCursor, FindingQuery, StatsQuery};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;
/// Most `data.*` conditions in one query.
pub const MAX_DATA_FILTERS: usize = 8;
/// Most buckets one stats answer may have.
pub const MAX_BUCKETS: i64 = 10_000;

const EVENT_PARAMS: &str = "type, category, severity, min_severity, outcome, user_id, source_ip, agent_id, source, facility, correlation_id, from, to, q, limit, cursor, data.<path>";

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter(msg.into())
}

/// Parses a raw query string into name → value, refusing repeated names.
pub fn pairs(raw: Option<&str>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut map = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad(format!("parameter `{k}` is given more than once")));
        }
    }
    Ok(map)
}

/// The event query a `GET /api/v1/events` query string asks for.
pub fn event_query(raw: Option<&str>, now: OffsetDateTime) -> Result<EventQuery, ApiError> {
    let mut q = EventQuery {
        limit: DEFAULT_LIMIT,
        ..EventQuery::default()
    };
    for (key, value) in pairs(raw)? {
        let v = value.as_str();
        match key.as_str() {
            "type" => q.event_type = Some(type_filter(v)?),
            "category" => {
                q.category = Some(
                    Category::parse(v)
                        .ok_or_else(|| bad(format!("category `{v}` is not in the taxonomy")))?,
                )
            }
            "severity" => q.severity = Some(severity(&key, v)?),
            "min_severity" => q.min_severity = Some(severity(&key, v)?),
            "outcome" => {
                q.outcome = Some(Outcome::parse_alias(v).ok_or_else(|| {
                    bad(format!("outcome `{v}` is not success, failure or unknown"))
                })?)
            }
            "user_id" => q.user_id = Some(text(&key, v)?),
            "source_ip" if v.starts_with("ps_") => q.source_ip = Some(v.to_owned()),
            "source_ip" => {
                q.source_ip = Some(
                    v.trim()
                        .parse::<std::net::IpAddr>()
                        .map_err(|_| bad(format!("source_ip `{v}` is not an IP address")))?
                        .to_string(),
                )
            }
            "agent_id" => q.agent_id = Some(text(&key, v)?),
            "source" => q.source = Some(text(&key, v)?),
            "facility" => q.facility = Some(text(&key, v)?),
            "correlation_id" => q.correlation_id = Some(text(&key, v)?),
            "from" => q.from = Some(unix_micros(time_param(&key, v, now)?)),
            "to" => q.to = Some(unix_micros(time_param(&key, v, now)?)),
            "q" => {
                let len = v.chars().count();
                if !(1..=256).contains(&len) {
                    return Err(bad("q: the text to find is 1 to 256 characters"));
                }
                q.text = Some(v.to_owned());
            }
            "limit" => q.limit = limit(v)?,
            "cursor" => {
                q.cursor = Some(
                    Cursor::decode(v)
                        .ok_or_else(|| bad("cursor is not one this server handed out"))?,
                )
            }
            _ => match key.strip_prefix("data.") {
                Some(path) => q.data.push(data_filter(path, v)?),
                None => {
                    return Err(bad(format!(
                        "unknown parameter `{key}`; known: {EVENT_PARAMS}"
                    )));
                }
            },
        }
    }
    if q.data.len() > MAX_DATA_FILTERS {
        return Err(bad(format!(
            "at most {MAX_DATA_FILTERS} data.<path> conditions per query"
        )));
    }
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from >= to
    {
        return Err(bad("`from` must be before `to`"));
    }
    Ok(q)
}

const FINDING_PARAMS: &str =
    "status, rule_id, severity, min_severity, facility, from, to, limit, cursor";

/// The finding query a `GET /api/v1/findings` query string asks for: `from` and `to`
/// select findings active in that range (last seen at or after `from`, first seen
/// before `to`).
pub fn finding_query(raw: Option<&str>, now: OffsetDateTime) -> Result<FindingQuery, ApiError> {
    let mut q = FindingQuery {
        limit: DEFAULT_LIMIT,
        ..FindingQuery::default()
    };
    for (key, value) in pairs(raw)? {
        let v = value.as_str();
        match key.as_str() {
            "status" => q.status = Some(v.parse().map_err(|e| bad(format!("status: {e}")))?),
            "rule_id" => q.rule_id = Some(text(&key, v)?),
            "severity" => q.severity = Some(severity(&key, v)?),
            "min_severity" => q.min_severity = Some(severity(&key, v)?),
            "facility" => q.facility = Some(text(&key, v)?),
            "from" => q.from = Some(unix_micros(time_param(&key, v, now)?)),
            "to" => q.to = Some(unix_micros(time_param(&key, v, now)?)),
            "limit" => q.limit = limit(v)?,
            "cursor" => {
                q.cursor = Some(
                    FindingCursor::decode(v)
                        .ok_or_else(|| bad("cursor is not one this server handed out"))?,
                )
            }
            _ => {
                return Err(bad(format!(
                    "unknown parameter `{key}`; known: {FINDING_PARAMS}"
                )));
            }
        }
    }
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from >= to
    {
        return Err(bad("`from` must be before `to`"));
    }
    Ok(q)
}

/// Whether a `GET /api/v1/events/{id}` query string asks for the event's findings
/// (`include=findings`).
pub fn include_findings(raw: Option<&str>) -> Result<bool, ApiError> {
    let mut include = false;
    for (key, value) in pairs(raw)? {
        match (key.as_str(), value.as_str()) {
            ("include", "findings") => include = true,
            ("include", other) => {
                return Err(bad(format!(
                    "include `{other}` is not something an event has; known: findings"
                )));
            }
            _ => return Err(bad(format!("unknown parameter `{key}`; known: include"))),
        }
    }
    Ok(include)
}

/// The time range a backtest covers: `from` and `to` (default: the last 24 hours).
pub fn backtest_range(raw: Option<&str>, now: OffsetDateTime) -> Result<(i64, i64), ApiError> {
    let (mut from, mut to) = (now - Duration::hours(24), now);
    for (key, value) in pairs(raw)? {
        match key.as_str() {
            "from" => from = time_param(&key, &value, now)?,
            "to" => to = time_param(&key, &value, now)?,
            _ => return Err(bad(format!("unknown parameter `{key}`; known: from, to"))),
        }
    }
    if from >= to {
        return Err(bad("`from` must be before `to`"));
    }
    Ok((unix_micros(from), unix_micros(to)))
}

/// The stats query a `GET /api/v1/stats` query string asks for.
/// Defaults: the last 24 hours, grouped by type and severity, hourly buckets.
pub fn stats_query(raw: Option<&str>, now: OffsetDateTime) -> Result<StatsQuery, ApiError> {
    let mut from = now - Duration::hours(24);
    let mut to = now;
    let mut group_by = vec![GroupField::Type, GroupField::Severity];
    let mut interval = Duration::hours(1);
    for (key, value) in pairs(raw)? {
        let v = value.as_str();
        match key.as_str() {
            "from" => from = time_param(&key, v, now)?,
            "to" => to = time_param(&key, v, now)?,
            "interval" => interval = duration(&key, v)?,
            "group_by" => group_by = group_fields(v)?,
            _ => {
                return Err(bad(format!(
                    "unknown parameter `{key}`; known: from, to, group_by, interval"
                )));
            }
        }
    }
    if from >= to {
        return Err(bad("`from` must be before `to`"));
    }
    let (from, to, interval) = (
        unix_micros(from),
        unix_micros(to),
        interval.whole_microseconds() as i64,
    );
    if (to - from) / interval > MAX_BUCKETS {
        return Err(bad(format!(
            "interval is too fine for the range: more than {MAX_BUCKETS} buckets"
        )));
    }
    Ok(StatsQuery {
        from,
        to,
        group_by,
        interval,
        scope: None,
    })
}

fn type_filter(v: &str) -> Result<TypeFilter, ApiError> {
    let (name, prefix) = match v.strip_suffix('*') {
        Some(p) => (p.strip_suffix('.').unwrap_or(p), true),
        None => (v, false),
    };
    if !evident_model::is_type_name(name) {
        return Err(bad(format!(
            "type `{v}` is not a dotted lowercase name, or such a name followed by .* (e.g. auth.*)"
        )));
    }
    Ok(if prefix {
        TypeFilter::Prefix(format!("{name}."))
    } else {
        TypeFilter::Exact(name.to_owned())
    })
}

fn severity(key: &str, v: &str) -> Result<Severity, ApiError> {
    Severity::parse_alias(v).ok_or_else(|| {
        bad(format!(
            "{key} `{v}` is not critical, high, medium, low or info"
        ))
    })
}

fn text(key: &str, v: &str) -> Result<String, ApiError> {
    if v.is_empty() || v.len() > 256 {
        return Err(bad(format!("{key} must be 1 to 256 bytes")));
    }
    Ok(v.to_owned())
}

fn limit(v: &str) -> Result<usize, ApiError> {
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(bad(format!(
            "limit `{v}` must be a whole number from 1 to {MAX_LIMIT}"
        ))),
    }
}

fn data_filter(path: &str, value: &str) -> Result<DataFilter, ApiError> {
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    let ok = segments.len() <= 8
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !ok {
        return Err(bad(format!(
            "data.{path}: a data path is up to 8 dot-separated names of letters, digits, _ and -"
        )));
    }
    if value.len() > 1024 {
        return Err(bad(format!("data.{path}: value longer than 1024 bytes")));
    }
    Ok(DataFilter {
        path: segments,
        value: value.to_owned(),
    })
}

/// A time: RFC 3339, or a duration back from now (`15m`, `24h`, `7d`).
fn time_param(key: &str, v: &str, now: OffsetDateTime) -> Result<OffsetDateTime, ApiError> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(t);
    }
    match parse_duration(v) {
        Some(d) => Ok(now - d),
        None => Err(bad(format!(
            "{key} `{v}` is neither an RFC 3339 time (2024-06-01T00:00:00Z) nor a duration back from now (15m, 24h, 7d)"
        ))),
    }
}

fn duration(key: &str, v: &str) -> Result<Duration, ApiError> {
    parse_duration(v).ok_or_else(|| {
        bad(format!(
            "{key} `{v}` is not a duration such as 30s, 5m, 1h or 1d"
        ))
    })
}

/// `<n><unit>` with unit s, m, h or d; positive and at most ten years.
fn parse_duration(v: &str) -> Option<Duration> {
    let unit = v.chars().last()?;
    let n: i64 = v[..v.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    let total = n.checked_mul(seconds)?;
    (1..=10 * 366 * 86_400)
        .contains(&total)
        .then(|| Duration::seconds(total))
}

fn group_fields(v: &str) -> Result<Vec<GroupField>, ApiError> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    let mut fields = Vec::new();
    for name in v.split(',') {
        let field = GroupField::parse(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = GroupField::ALL.iter().map(|g| g.as_str()).collect();
            bad(format!(
                "group_by `{name}` is not one of {}",
                known.join(", ")
            ))
        })?;
        if fields.contains(&field) {
            return Err(bad(format!("group_by names `{name}` twice")));
        }
        fields.push(field);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests;

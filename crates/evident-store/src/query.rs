//! Typed queries over stored events: what the API parses requests into and backends execute.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evident_model::{Category, Outcome, Severity};
use serde::Serialize;

/// Which types a query matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// Exactly this type.
    Exact(String),
    /// Every type starting with this prefix (which ends with a dot, as in `auth.`).
    Prefix(String),
}

/// Events whose JSON `data` holds `value` at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFilter {
    /// Path segments below `data` (each `[A-Za-z0-9_-]+`).
    pub path: Vec<String>,
    /// Compared with the stored value as text, and as a number when it reads as one.
    pub value: String,
}

/// The facilities a caller may see: `None` is every facility.
pub type Scope = Option<Vec<String>>;

/// A filter over stored events, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Type, exact or by prefix.
    pub event_type: Option<TypeFilter>,
    /// Category.
    pub category: Option<Category>,
    /// Exactly this severity.
    pub severity: Option<Severity>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// Actor's user id.
    pub user_id: Option<String>,
    /// Actor's address (canonical text form).
    pub source_ip: Option<String>,
    /// Emitting agent.
    pub agent_id: Option<String>,
    /// Emitting service.
    pub source: Option<String>,
    /// Facility.
    pub facility: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Event time at or after this (Unix microseconds).
    pub from: Option<i64>,
    /// Event time before this (Unix microseconds).
    pub to: Option<i64>,
    /// Conditions on `data` fields, all of which must hold.
    pub data: Vec<DataFilter>,
    /// Text `data.message` must contain (ASCII letters match either case): the raw text
    /// of syslog and agent lines, and any event's message.
    pub text: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Continue after this position.
    pub cursor: Option<Cursor>,
    /// Facilities the caller may see.
    pub scope: Scope,
}

/// A position in the newest-first order: (event time, seq) of the last event returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Event time, Unix microseconds.
    pub time: i64,
    /// Commit sequence number.
    pub seq: i64,
}

impl Cursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.time, self.seq))
    }

    /// Parses a text form produced by [`Cursor::encode`].
    pub fn decode(s: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (time, seq) = text.split_once(':')?;
        Some(Cursor {
            time: time.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// One stored event: its commit sequence number and canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Commit sequence number.
    pub seq: i64,
    /// Canonical encoding.
    pub bytes: Vec<u8>,
}

/// One page of query results.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Matching events, newest first.
    pub events: Vec<StoredEvent>,
    /// Where the next page starts, when there may be one.
    pub next_cursor: Option<Cursor>,
}

/// A field statistics can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupField {
    /// Event type.
    Type,
    /// Category.
    Category,
    /// Severity.
    Severity,
    /// Priority.
    Priority,
    /// Outcome.
    Outcome,
    /// Emitting service.
    Source,
    /// Emitting agent.
    AgentId,
    /// Actor's user id.
    UserId,
    /// Actor's address.
    SourceIp,
    /// Facility.
    Facility,
}

impl GroupField {
    /// Every groupable field.
    pub const ALL: [GroupField; 10] = [
        Self::Type,
        Self::Category,
        Self::Severity,
        Self::Priority,
        Self::Outcome,
        Self::Source,
        Self::AgentId,
        Self::UserId,
        Self::SourceIp,
        Self::Facility,
    ];

    /// The name clients use (and the column that holds it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Type => "type",
            Self::Category => "category",
            Self::Severity => "severity",
            Self::Priority => "priority",
            Self::Outcome => "outcome",
            Self::Source => "source",
            Self::AgentId => "agent_id",
            Self::UserId => "user_id",
            Self::SourceIp => "source_ip",
            Self::Facility => "facility",
        }
    }

    /// Parses a client's name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Counts per group and over time, in a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    /// Range start (inclusive), Unix microseconds.
    pub from: i64,
    /// Range end (exclusive), Unix microseconds.
    pub to: i64,
    /// Fields to group by (none: one group of everything).
    pub group_by: Vec<GroupField>,
    /// Bucket width of the time series, in microseconds.
    pub interval: i64,
    /// Facilities the caller may see.
    pub scope: Scope,
}

/// One group's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCount {
    /// The group's value per grouped field, in `group_by` order (`None` where unset).
    pub key: Vec<Option<String>>,
    /// Events in the group.
    pub count: u64,
    /// Earliest event time in the group, Unix microseconds.
    pub first: i64,
    /// Latest event time in the group, Unix microseconds.
    pub last: i64,
}

/// One bucket of the time series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Bucket start, Unix microseconds.
    pub start: i64,
    /// Events in the bucket.
    pub count: u64,
    /// Of those, how many of each severity, by rank (info, low, medium, high, critical).
    pub by_severity: [u64; 5],
}

/// The answer to a [`StatsQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Groups, largest first (at most [`MAX_GROUPS`]).
    pub groups: Vec<GroupCount>,
    /// Buckets with at least one event, oldest first.
    pub series: Vec<Bucket>,
    /// Events in the range.
    pub total: u64,
}

/// Most groups a stats answer lists.
pub const MAX_GROUPS: usize = 1000;

/// The SQL pieces of a stats grouping: the select list's leading columns (`a, b, `) and
/// the `GROUP BY` clause (empty without grouping). Column names come from the closed
/// [`GroupField`] set, never from the request.
pub(crate) fn group_sql(fields: &[GroupField]) -> (String, String) {
    let cols: Vec<&str> = fields.iter().map(|g| g.as_str()).collect();
    let select = cols.iter().map(|c| format!("{c}, ")).collect();
    let group = if cols.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", cols.join(", "))
    };
    (select, group)
}

/// The smallest string greater than every string starting with `prefix`.
pub(crate) fn prefix_end(prefix: &str) -> String {
    let mut end: Vec<char> = prefix.chars().collect();
    while let Some(last) = end.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            end.push(next);
            return end.into_iter().collect();
        }
    }
    String::from(char::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            time: 1_717_200_000_123_456,
            seq: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1:x")), None);
    }

    #[test]
    fn prefix_range_end() {
        assert_eq!(super::prefix_end("auth."), "auth/");
        assert!("auth.login" < super::prefix_end("auth.").as_str());
        assert!("autha" > super::prefix_end("auth.").as_str());
    }
}

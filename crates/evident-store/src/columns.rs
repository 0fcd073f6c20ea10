//! The query columns a store keeps beside each event's stored bytes, checked against
//! those bytes. Queries filter on the columns, so a column that says something the
//! stored event does not is tampering as much as a changed byte: the integrity walk
//! treats such an event as altered.

use evident_model::{Severity, unix_micros};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One row's query columns, as read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns<'r> {
    /// The `id` column (16 bytes).
    pub id: &'r [u8],
    /// `time`, Unix microseconds.
    pub time: i64,
    /// `received_at`, Unix microseconds.
    pub received_at: i64,
    /// `type`.
    pub event_type: &'r str,
    /// `category`.
    pub category: &'r str,
    /// `severity` rank.
    pub severity: i64,
    /// `priority` rank.
    pub priority: i64,
    /// `outcome`.
    pub outcome: &'r str,
    /// `source`.
    pub source: Option<&'r str>,
    /// `agent_id`.
    pub agent_id: Option<&'r str>,
    /// `user_id` (the actor's).
    pub user_id: Option<&'r str>,
    /// `source_ip` (the actor's address).
    pub source_ip: Option<&'r str>,
    /// `facility`.
    pub facility: Option<&'r str>,
    /// `correlation_id`.
    pub correlation_id: Option<&'r str>,
}

/// Reads the canonical encoding from the front (`evident_model::encode`: fields in a
/// fixed order, compact). Anything unexpected reads as disagreement.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn literal(&mut self, text: &[u8]) -> bool {
        let found = self.bytes[self.at..].starts_with(text);
        if found {
            self.at += text.len();
        }
        found
    }

    /// A JSON string, quotes included.
    fn string(&mut self) -> Option<&'a [u8]> {
        let rest = self.bytes.get(self.at..)?;
        if rest.first() != Some(&b'"') {
            return None;
        }
        let mut i = 1;
        loop {
            match rest.get(i)? {
                b'"' => break,
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        self.at += i + 1;
        Some(&rest[..=i])
    }

    /// `,"name":` then a string equal to `column`; or nothing when `column` is none.
    fn optional(&mut self, name: &[u8], column: Option<&str>) -> bool {
        if self.field(name) {
            column.is_some_and(|c| self.string().is_some_and(|raw| text_is(raw, c)))
        } else {
            column.is_none()
        }
    }

    /// `,"name":`, if it comes next.
    fn field(&mut self, name: &[u8]) -> bool {
        let rest = &self.bytes[self.at..];
        let found = rest.len() > name.len() + 3
            && rest[0] == b','
            && rest[1] == b'"'
            && rest[2..].starts_with(name)
            && rest[2 + name.len()..].starts_with(b"\":");
        if found {
            self.at += name.len() + 4;
        }
        found
    }

    /// Skips one JSON object (strings may hold braces).
    fn object(&mut self) -> Option<()> {
        let mut depth = 0usize;
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        self.at += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
        None
    }
}

/// Whether the JSON string `raw` (quotes included) holds `text`.
fn text_is(raw: &[u8], text: &str) -> bool {
    let inner = &raw[1..raw.len() - 1];
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(raw).is_ok_and(|s| s == text)
    } else {
        inner == text.as_bytes()
    }
}

/// A canonical time (`2026-03-01T10:00:00.123456Z`, RFC 3339 in UTC) in Unix
/// microseconds: read directly in the usual form, by the full parser otherwise.
fn micros(raw: &[u8]) -> Option<i64> {
    let inner = raw.get(1..raw.len().checked_sub(1)?)?;
    fast_micros(inner).or_else(|| {
        let text = std::str::from_utf8(inner).ok()?;
        OffsetDateTime::parse(text, &Rfc3339).ok().map(unix_micros)
    })
}

fn fast_micros(t: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        t.get(range)?.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    if t.len() < 20
        || t[4] != b'-'
        || t[7] != b'-'
        || t[10] != b'T'
        || t[13] != b':'
        || t[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let fraction = match (t.get(19), t.last()) {
        (Some(b'Z'), _) if t.len() == 20 => 0,
        (Some(b'.'), Some(b'Z')) if (22..=30).contains(&t.len()) => {
            let n = t.len() - 21;
            let value = digits(20..20 + n)?;
            let nanos = value * 10i64.pow(9 - n as u32);
            if nanos % 1000 != 0 {
                return None;
            }
            nanos / 1000
        }
        _ => return None,
    };
    // Days from the civil date (proleptic Gregorian), after H. Hinnant.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + fraction)
}

/// Whether every column says what the stored event `body` says.
pub fn agree(columns: &Columns<'_>, body: &[u8]) -> bool {
    let mut s = Scan { bytes: body, at: 0 };
    let mut id = [0u8; 36];
    let Ok(uuid) = uuid::Uuid::from_slice(columns.id) else {
        return false;
    };
    let id = uuid.hyphenated().encode_lower(&mut id).as_bytes();
    // Severity and priority share their names (one five-level scale each).
    let level = |rank: i64| {
        u8::try_from(rank)
            .ok()
            .and_then(Severity::from_rank)
            .map(Severity::as_str)
    };
    let (Some(severity), Some(priority)) = (level(columns.severity), level(columns.priority))
    else {
        return false;
    };
    let head = s.literal(b"{\"id\":\"")
        && s.literal(id)
        && s.literal(b"\",\"time\":")
        && s.string().and_then(micros) == Some(columns.time)
        && s.literal(b",\"received_at\":")
        && s.string().and_then(micros) == Some(columns.received_at)
        && s.literal(b",\"type\":")
        && s.string()
            .is_some_and(|raw| text_is(raw, columns.event_type))
        && s.literal(b",\"category\":")
        && s.string().is_some_and(|raw| text_is(raw, columns.category))
        && s.literal(b",\"severity\":")
        && s.string().is_some_and(|raw| text_is(raw, severity))
        && s.literal(b",\"priority\":")
        && s.string().is_some_and(|raw| text_is(raw, priority))
        && s.literal(b",\"outcome\":")
        && s.string().is_some_and(|raw| text_is(raw, columns.outcome))
        && s.optional(b"source", columns.source)
        && s.optional(b"agent_id", columns.agent_id);
    if !head {
        return false;
    }
    // The actor: user_id, session_id, ip, user_agent, each optional, in that order.
    let (mut user_id, mut ip) = (None, None);
    if s.field(b"actor") {
        if !s.literal(b"{") {
            return false;
        }
        let mut first = true;
        while !s.literal(b"}") {
            if !first && !s.literal(b",") {
                return false;
            }
            first = false;
            let (Some(key), true, Some(value)) = (s.string(), s.literal(b":"), s.string()) else {
                return false;
            };
            match key {
                b"\"user_id\"" => user_id = Some(value),
                b"\"ip\"" => ip = Some(value),
                _ => {}
            }
        }
    }
    let same = |raw: Option<&[u8]>, column: Option<&str>| match (raw, column) {
        (Some(raw), Some(column)) => text_is(raw, column),
        (None, None) => true,
        _ => false,
    };
    if !same(user_id, columns.user_id) || !same(ip, columns.source_ip) {
        return false;
    }
    if s.field(b"target") && s.object().is_none() {
        return false;
    }
    s.optional(b"facility", columns.facility)
        && s.optional(b"correlation_id", columns.correlation_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::event;

    /// The columns a store keeps for `e`.
    fn columns(e: &evident_model::Event) -> Columns<'_> {
        Columns {
            id: e.id.as_bytes(),
            time: unix_micros(e.time),
            received_at: unix_micros(e.received_at),
            event_type: &e.event_type,
            category: e.category.as_str(),
            severity: i64::from(e.severity.rank()),
            priority: i64::from(e.priority.rank()),
            outcome: e.outcome.as_str(),
            source: e.source.as_deref(),
            agent_id: e.agent_id.as_deref(),
            user_id: e.actor.user_id.as_deref(),
            source_ip: e.actor.ip.as_deref(),
            facility: e.facility.as_deref(),
            correlation_id: e.correlation_id.as_deref(),
        }
    }

    #[test]
    fn the_columns_of_an_event_agree_and_any_changed_one_does_not() {
        let mut encoded = event("auth.login.failure", 3, Severity::High);
        encoded.event.actor.user_id = Some("ps_abc".into());
        encoded.event.actor.ip = Some("192.0.2.1".into());
        encoded.event.facility = Some("plant-1".into());
        encoded.event.correlation_id = Some("req-1".into());
        let encoded = evident_model::EncodedEvent::new(encoded.event);
        let right = columns(&encoded.event);
        assert!(agree(&right, &encoded.bytes));
        let other_id = uuid::Uuid::new_v4();
        let wrong = [
            Columns {
                id: other_id.as_bytes(),
                ..right
            },
            Columns {
                time: right.time + 1,
                ..right
            },
            Columns {
                received_at: right.received_at - 1,
                ..right
            },
            Columns {
                event_type: "auth.login.success",
                ..right
            },
            Columns {
                category: "system",
                ..right
            },
            Columns {
                severity: 0,
                ..right
            },
            Columns {
                priority: 0,
                ..right
            },
            Columns {
                outcome: "success",
                ..right
            },
            Columns {
                source: None,
                ..right
            },
            Columns {
                agent_id: Some("a"),
                ..right
            },
            Columns {
                user_id: Some("ps_abd"),
                ..right
            },
            Columns {
                source_ip: None,
                ..right
            },
            Columns {
                facility: Some("plant-2"),
                ..right
            },
            Columns {
                correlation_id: Some("req-2"),
                ..right
            },
        ];
        for (i, columns) in wrong.iter().enumerate() {
            assert!(!agree(columns, &encoded.bytes), "change {i} went unnoticed");
        }
        assert!(!agree(&right, b"{\"id\":"), "bytes that are no event");
    }

    proptest::proptest! {
        #[test]
        fn times_read_fast_as_the_full_parser_reads_them(micros_in in -62_000_000_000_000_000i64..250_000_000_000_000_000i64) {
            let t = evident_model::from_unix_micros(micros_in).unwrap();
            let text = format!("\"{}\"", t.format(&Rfc3339).unwrap());
            proptest::prop_assert_eq!(micros(text.as_bytes()), Some(micros_in));
            proptest::prop_assert_eq!(fast_micros(&text.as_bytes()[1..text.len() - 1]), Some(micros_in));
        }
    }

    #[test]
    fn escaped_text_and_nested_objects_are_read_as_json() {
        let mut e = event("station.operation", 1, Severity::Low).event;
        e.actor.user_id = Some("quote\" back\\ nul\u{0} é".into());
        e.target = serde_json::json!({"facility": "not this one", "x": {"}": "{"}})
            .as_object()
            .unwrap()
            .clone();
        e.facility = Some("plant-\"1\"".into());
        let encoded = evident_model::EncodedEvent::new(e);
        let columns = columns(&encoded.event);
        assert!(agree(&columns, &encoded.bytes));
        assert!(!agree(
            &Columns {
                facility: Some("not this one"),
                ..columns
            },
            &encoded.bytes
        ));
    }
}

//! The query columns a store keeps beside each event's stored bytes, checked against
//! those bytes. Queries filter on the columns, so a column that says something the
//! stored event does not is tampering as much as a changed byte: the integrity walk
//! treats such an event as altered.

use evident_model::{Category, Outcome, Priority, Severity, unix_micros};
use serde::Deserialize;
use std::borrow::Cow;
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

/// The fields of a stored event the columns copy; everything else is skipped unread.
#[derive(Deserialize)]
struct Head<'a> {
    id: uuid::Uuid,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    received_at: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    category: Category,
    severity: Severity,
    priority: Priority,
    outcome: Outcome,
    #[serde(default, borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    agent_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    actor: Option<ActorHead<'a>>,
    #[serde(default, borrow)]
    facility: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    correlation_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ActorHead<'a> {
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip: Option<Cow<'a, str>>,
}

fn micros(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(unix_micros)
}

fn same(column: Option<&str>, field: Option<&Cow<'_, str>>) -> bool {
    column == field.map(|f| f.as_ref())
}

/// Whether every column says what the stored event `body` says.
pub fn agree(columns: &Columns<'_>, body: &[u8]) -> bool {
    let Ok(head) = serde_json::from_slice::<Head<'_>>(body) else {
        return false;
    };
    let actor = head.actor.as_ref();
    columns.id == head.id.as_bytes()
        && micros(&head.time) == Some(columns.time)
        && micros(&head.received_at) == Some(columns.received_at)
        && columns.event_type == head.event_type
        && columns.category == head.category.as_str()
        && columns.severity == i64::from(head.severity.rank())
        && columns.priority == i64::from(head.priority.rank())
        && columns.outcome == head.outcome.as_str()
        && same(columns.source, head.source.as_ref())
        && same(columns.agent_id, head.agent_id.as_ref())
        && same(columns.user_id, actor.and_then(|a| a.user_id.as_ref()))
        && same(columns.source_ip, actor.and_then(|a| a.ip.as_ref()))
        && same(columns.facility, head.facility.as_ref())
        && same(columns.correlation_id, head.correlation_id.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::event;

    fn columns_of(e: &evident_model::Event) -> (Vec<u8>, String, String, String) {
        (
            e.id.as_bytes().to_vec(),
            e.event_type.clone(),
            e.category.as_str().to_owned(),
            e.outcome.as_str().to_owned(),
        )
    }

    #[test]
    fn the_columns_of_an_event_agree_and_any_changed_one_does_not() {
        let mut encoded = event("auth.login.failure", 3, Severity::High);
        encoded.event.actor.user_id = Some("ps_abc".into());
        encoded.event.actor.ip = Some("192.0.2.1".into());
        encoded.event.facility = Some("plant-1".into());
        encoded.event.correlation_id = Some("req-1".into());
        let encoded = evident_model::EncodedEvent::new(encoded.event);
        let e = &encoded.event;
        let (id, ty, category, outcome) = columns_of(e);
        let right = Columns {
            id: &id,
            time: unix_micros(e.time),
            received_at: unix_micros(e.received_at),
            event_type: &ty,
            category: &category,
            severity: i64::from(e.severity.rank()),
            priority: i64::from(e.priority.rank()),
            outcome: &outcome,
            source: e.source.as_deref(),
            agent_id: e.agent_id.as_deref(),
            user_id: e.actor.user_id.as_deref(),
            source_ip: e.actor.ip.as_deref(),
            facility: e.facility.as_deref(),
            correlation_id: e.correlation_id.as_deref(),
        };
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
}

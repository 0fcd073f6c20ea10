//! The service's own records: the source and event types only evident itself may use.
//!
//! evident stores events about itself (deduplication summaries, refused ingest, store
//! failures, erasures, finding changes). A client must not be able to forge them: events
//! a client sends that claim the service's source or one of its types are refused at
//! admission, and every record the service makes carries [`crate::Event::service_record`],
//! a field no input shape can set.

use crate::{Actor, Category, Event, Outcome, Priority, Severity, to_stored_precision};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// The `source` of every record the service makes.
pub const SOURCE: &str = "evident";

/// A deduplication window closed: how many repeats were folded into a stored event.
pub const DEDUP_SUMMARY: &str = "evident.dedup.summary";
/// Events refused by overload or a failing store during a window, counted.
pub const INGEST_REFUSED: &str = "system.ingest.refused";
/// The store stopped taking writes.
pub const STORE_UNWRITABLE: &str = "system.store.unwritable";
/// A subject's personal data was erased.
pub const SUBJECT_ERASED: &str = "privacy.subject.erased";

/// Folds recorded by deduplication: `data.folds` is a list of `[folded id, stored id]`.
pub const FOLDS_RECORDED: &str = "evident.dedup.folded";
/// Evidence linked to findings by detection: `data.findings` lists `{finding, rule,
/// events}` with the newly linked event ids.
pub const FINDING_EVIDENCE: &str = "evident.finding.evidence";
/// A finding's status was changed: `data.finding`, `data.status`, `data.by`.
pub const FINDING_STATUS: &str = "evident.finding.status";

/// Event types outside the reserved `evident.` prefix that only the service records.
const RESERVED_TYPES: [&str; 3] = [INGEST_REFUSED, STORE_UNWRITABLE, SUBJECT_ERASED];

/// A record of the service's own: source `evident`, category system, outcome unknown,
/// marked [`Event::service_record`], at `now`, carrying `data`; callers set what else
/// they need.
pub fn record(
    event_type: &str,
    severity: Severity,
    priority: Priority,
    data: Value,
    now: OffsetDateTime,
) -> Event {
    let now = to_stored_precision(now);
    Event {
        id: Uuid::now_v7(),
        time: now,
        received_at: now,
        event_type: event_type.into(),
        category: Category::System,
        severity,
        priority,
        outcome: Outcome::Unknown,
        source: Some(SOURCE.into()),
        agent_id: None,
        actor: Actor::default(),
        target: Default::default(),
        facility: None,
        correlation_id: None,
        data: match data {
            Value::Object(map) => map,
            _ => Default::default(),
        },
        context: Default::default(),
        tags: vec![],
        compliance: vec![],
        sealed: None,
        service_record: true,
    }
}

/// Whether `event_type` is that of a record of a side table's change (folds, findings'
/// evidence and statuses): bookkeeping of the log, not events to detect on.
pub fn is_side_record(event_type: &str) -> bool {
    SIDE_RECORDS.contains(&event_type)
}

/// The types of the records of side tables' changes.
pub const SIDE_RECORDS: [&str; 3] = [FOLDS_RECORDED, FINDING_EVIDENCE, FINDING_STATUS];

/// Whether `event_type` is one only the service may record: anything under `evident.`,
/// and the service's records under other prefixes.
pub fn is_reserved_type(event_type: &str) -> bool {
    event_type == "evident"
        || event_type.starts_with("evident.")
        || RESERVED_TYPES.contains(&event_type)
}

/// Whether `source` names the service itself (in any letter case, spaces around ignored).
pub fn is_reserved_source(source: &str) -> bool {
    source.trim().eq_ignore_ascii_case(SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_types_and_source_are_reserved_and_nothing_else() {
        for t in [
            DEDUP_SUMMARY,
            INGEST_REFUSED,
            STORE_UNWRITABLE,
            SUBJECT_ERASED,
            "evident.finding.status",
        ] {
            assert!(is_reserved_type(t), "{t}");
        }
        for t in [
            "evidently.ok",
            "system.config.change",
            "privacy.subject.export",
            "auth.login.failure",
        ] {
            assert!(!is_reserved_type(t), "{t}");
        }
        assert!(is_reserved_source(" Evident "));
        assert!(!is_reserved_source("evident-agent"));
    }
}

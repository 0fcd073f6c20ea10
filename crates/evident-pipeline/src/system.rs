//! Events the service raises about itself.

use evident_model::{
    Actor, Category, EncodedEvent, Event, Outcome, Priority, Severity, to_stored_precision,
};
use evident_store::StoreError;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// An event of the service's own (source `evident`, category system) at `now`, carrying
/// `data`; callers set what else they need.
pub(crate) fn service_event(
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
        source: Some(evident_model::service::SOURCE.into()),
        agent_id: None,
        actor: Actor::default(),
        target: Default::default(),
        facility: None,
        correlation_id: None,
        data: data.as_object().cloned().unwrap_or_default(),
        context: Default::default(),
        tags: vec![],
        compliance: vec![],
        sealed: None,
        service_record: true,
    }
}

/// The store stopped taking writes (full, read-only, unreachable): IEC 62443-3-3 SR 2.9
/// (audit storage capacity) and SR 2.10 (response to audit processing failures).
pub(crate) fn store_unwritable(error: &StoreError) -> EncodedEvent {
    let reason = match error {
        StoreError::Full(_) => "full",
        StoreError::ReadOnly(_) => "read_only",
        _ => "failing",
    };
    let data = json!({"reason": reason, "error": error.to_string()});
    let mut event = service_event(
        evident_model::service::STORE_UNWRITABLE,
        Severity::Critical,
        Priority::Critical,
        data,
        OffsetDateTime::now_utc(),
    );
    event.outcome = Outcome::Failure;
    event.compliance = vec!["iec62443:sr2.9".into(), "iec62443:sr2.10".into()];
    EncodedEvent::new(event)
}

/// A subject's personal data was erased (GDPR art. 17): the audit record of the erasure.
/// It names the subject only by pseudonym (`data.subject`), never in the clear, and the
/// API key that asked for it (`data.by_key`).
pub fn erasure_recorded(subject: &str, had_key: bool, by_key: i64) -> EncodedEvent {
    let data = json!({"subject": subject, "key_destroyed": had_key, "by_key": by_key});
    let mut event = service_event(
        evident_model::service::SUBJECT_ERASED,
        Severity::Medium,
        Priority::High,
        data,
        OffsetDateTime::now_utc(),
    );
    event.category = Category::Data;
    event.outcome = Outcome::Success;
    event.compliance = vec!["gdpr:art17".into(), "gdpr:art30".into()];
    EncodedEvent::new(event)
}

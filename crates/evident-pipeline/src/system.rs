//! Events the service raises about itself.

use evident_model::{
    Actor, Category, EncodedEvent, Event, Outcome, Priority, Severity, to_stored_precision,
};
use evident_store::StoreError;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// The store stopped taking writes (full, read-only, unreachable): IEC 62443-3-3 SR 2.9
/// (audit storage capacity) and SR 2.10 (response to audit processing failures).
pub(crate) fn store_unwritable(error: &StoreError) -> EncodedEvent {
    let reason = match error {
        StoreError::Full(_) => "full",
        StoreError::ReadOnly(_) => "read_only",
        _ => "failing",
    };
    let now = to_stored_precision(OffsetDateTime::now_utc());
    EncodedEvent::new(Event {
        id: Uuid::now_v7(),
        time: now,
        received_at: now,
        event_type: "system.store.unwritable".into(),
        category: Category::System,
        severity: Severity::Critical,
        priority: Priority::Critical,
        outcome: Outcome::Failure,
        source: Some("evident".into()),
        agent_id: None,
        actor: Actor::default(),
        target: Default::default(),
        facility: None,
        correlation_id: None,
        data: json!({"reason": reason, "error": error.to_string()})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        context: Default::default(),
        tags: vec![],
        compliance: vec!["iec62443:sr2.9".into(), "iec62443:sr2.10".into()],
    })
}

//! Events the service raises about itself.

use evident_model::{Category, EncodedEvent, Outcome, Priority, Severity};
use evident_store::StoreError;
use serde_json::json;
use time::OffsetDateTime;

/// The store stopped taking writes (full, read-only, unreachable): IEC 62443-3-3 SR 2.9
/// (audit storage capacity) and SR 2.10 (response to audit processing failures).
pub(crate) fn store_unwritable(error: &StoreError) -> EncodedEvent {
    let reason = match error {
        StoreError::Full(_) => "full",
        StoreError::ReadOnly(_) => "read_only",
        _ => "failing",
    };
    let data = json!({"reason": reason, "error": error.to_string()});
    let mut event = evident_model::service::record(
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
    let mut event = evident_model::service::record(
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

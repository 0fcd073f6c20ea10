//! The service's own records: the source and event types only evident itself may use.
//!
//! evident stores events about itself (deduplication summaries, refused ingest, store
//! failures, erasures, finding changes). A client must not be able to forge them: events
//! a client sends that claim the service's source or one of its types are refused at
//! admission, and every record the service makes carries [`crate::Event::service_record`],
//! a field no input shape can set.

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

/// Event types outside the reserved `evident.` prefix that only the service records.
const RESERVED_TYPES: [&str; 3] = [INGEST_REFUSED, STORE_UNWRITABLE, SUBJECT_ERASED];

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

//! Arbitrary request bodies through admission, as NDJSON, as JSON, and as the format
//! sniffed when no Content-Type is sent. Admission may refuse a body or an event, but
//! must never panic, and what it accepts must be canonically encoded.

#![no_main]

use evident_ingest::{BodyFormat, Limits, admit};
use evident_model::{Event, canonical_bytes};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use time::macros::datetime;

const RECEIVED_AT: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);

fn check(body: &[u8], format: BodyFormat, limits: &Limits) {
    let Ok(admission) = admit(body, format, limits, RECEIVED_AT) else {
        return;
    };
    let total = admission.total();
    assert!(total > 0, "{format:?}: Ok admission with no events");

    // Every event position appears exactly once, across accepted and rejected.
    let mut seen = vec![false; total];
    let indices = admission
        .accepted
        .iter()
        .map(|(i, _)| *i)
        .chain(admission.rejected.iter().map(|r| r.index));
    for index in indices {
        assert!(index < total, "{format:?}: index {index} >= total {total}");
        assert!(!seen[index], "{format:?}: index {index} reported twice");
        seen[index] = true;
    }

    // Both lists are documented to be in request order.
    assert!(
        admission.accepted.windows(2).all(|w| w[0].0 < w[1].0),
        "{format:?}: accepted not in request order"
    );
    assert!(
        admission
            .rejected
            .windows(2)
            .all(|w| w[0].index < w[1].index),
        "{format:?}: rejected not in request order"
    );
    for r in &admission.rejected {
        assert!(
            !r.errors.is_empty(),
            "{format:?}: rejection {} without errors",
            r.index
        );
    }

    for (index, encoded) in &admission.accepted {
        assert!(
            encoded.bytes.len() <= limits.max_event_bytes,
            "{format:?}: accepted event {index} over the event size limit"
        );
        assert_eq!(
            encoded.bytes,
            canonical_bytes(&encoded.event),
            "{format:?}: event {index}: bytes are not the event's canonical encoding"
        );
        let back: Event = serde_json::from_slice(&encoded.bytes).unwrap_or_else(|e| {
            panic!(
                "{format:?}: event {index}: canonical bytes do not decode: {e}: {}",
                String::from_utf8_lossy(&encoded.bytes)
            )
        });
        assert_eq!(
            canonical_bytes(&back),
            encoded.bytes,
            "{format:?}: event {index}: decode then encode changed the bytes"
        );
    }
}

fuzz_target!(|body: &[u8]| {
    let limits = Limits::default();
    check(body, BodyFormat::Ndjson, &limits);
    check(body, BodyFormat::Json, &limits);
    // No Content-Type: the body is sniffed, which must always pick a format. Either
    // format it picks was just checked above, so admission is not run a third time.
    let _sniffed: BodyFormat = BodyFormat::from_content_type(None, body)
        .expect("sniffing a body without Content-Type must not fail");
});

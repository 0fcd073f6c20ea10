//! Admission of whole request bodies: framing, bounds and per-event outcomes together.

use evident_ingest::{BodyFormat, DecodeError, Limits, admit};
use proptest::prelude::*;
use time::OffsetDateTime;

#[test]
fn mixed_batch_keeps_valid_events_and_names_invalid_ones() {
    let body = br#"[{"type":"user.login"},{"type":"BAD TYPE"},{"type":"quality.check","severity":"nope"},{"type":"data.access"}]"#;
    let a = admit(
        body,
        BodyFormat::Json,
        &Limits::default(),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(
        a.accepted.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 3]
    );
    assert_eq!(
        a.rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(a.rejected[1].errors[0].field, "severity");
}

#[test]
fn oversized_event_is_refused_alone() {
    let limits = Limits {
        max_event_bytes: 400,
        ..Limits::default()
    };
    let big = "x".repeat(300);
    let body = format!(
        "{{\"type\":\"a.b\"}}\n{{\"type\":\"a.b\",\"data\":{{\"a\":\"{big}\",\"b\":\"{big}\"}}}}\n"
    );
    let a = admit(
        body.as_bytes(),
        BodyFormat::Ndjson,
        &limits,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(a.accepted.len(), 1);
    assert_eq!(a.rejected[0].line, Some(2));
    assert!(
        a.rejected[0].errors[0].reason.contains("400-byte"),
        "{:?}",
        a.rejected
    );
}

#[test]
fn whole_body_errors() {
    let now = OffsetDateTime::now_utc();
    let l = Limits::default();
    assert!(matches!(
        admit(b"nonsense", BodyFormat::Json, &l, now),
        Err(DecodeError::InvalidJson(_))
    ));
    assert!(matches!(
        admit(b"42", BodyFormat::Json, &l, now),
        Err(DecodeError::WrongShape(_))
    ));
    assert!(matches!(
        admit(b"[]", BodyFormat::Json, &l, now),
        Err(DecodeError::Empty)
    ));
    assert!(matches!(
        admit(b"\n\n", BodyFormat::Ndjson, &l, now),
        Err(DecodeError::Empty)
    ));
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert!(matches!(
        admit(deep.as_bytes(), BodyFormat::Json, &l, now),
        Err(DecodeError::InvalidJson(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Arbitrary bytes never panic admission, and every event is either accepted or rejected.
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), ndjson in any::<bool>()) {
        let format = if ndjson { BodyFormat::Ndjson } else { BodyFormat::Json };
        if let Ok(a) = admit(&body, format, &Limits::default(), OffsetDateTime::now_utc()) {
            prop_assert!(a.total() > 0);
        }
    }

    /// Lines that look like events, mangled at random, are each accounted for exactly once.
    #[test]
    fn every_line_is_accounted_for(lines in prop::collection::vec(
        prop_oneof![
            Just(r#"{"type":"user.login","severity":"info"}"#.to_owned()),
            Just(r#"{"eventType":"access.denied","sourceIp":"10.0.0.1"}"#.to_owned()),
            Just(r#"{"type":"LOG","agent_id":"a","data":{}}"#.to_owned()),
            "[ -~]{0,40}",
        ], 1..40)) {
        let body = lines.join("\n");
        let non_blank = lines.iter().filter(|l| !l.trim().is_empty()).count();
        match admit(body.as_bytes(), BodyFormat::Ndjson, &Limits::default(), OffsetDateTime::now_utc()) {
            Ok(a) => {
                prop_assert_eq!(a.total(), non_blank);
                let mut seen: Vec<usize> = a.accepted.iter().map(|(i, _)| *i).chain(a.rejected.iter().map(|r| r.index)).collect();
                seen.sort_unstable();
                prop_assert_eq!(seen, (0..non_blank).collect::<Vec<_>>());
            }
            Err(e) => prop_assert_eq!(e, DecodeError::Empty),
        }
    }
}

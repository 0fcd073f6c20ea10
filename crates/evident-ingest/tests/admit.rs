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

/// Any JSON value, objects with distinct keys (as a serializer writes them).
fn arb_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON object text with `entries` in order, repeats and all.
fn object_text(entries: &[(String, serde_json::Value)]) -> String {
    let fields: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", fields.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Without repeated keys, the duplicate-checking parse gives what serde_json gives,
    /// and such an event is admitted as before.
    #[test]
    fn objects_without_repeated_keys_are_read_as_before(data in arb_value()) {
        let text = serde_json::to_string(&data).unwrap();
        let (value, dup) = evident_ingest::strict::parse_value(text.as_bytes()).unwrap();
        prop_assert_eq!(&value, &serde_json::from_str::<serde_json::Value>(&text).unwrap());
        prop_assert_eq!(dup, None);
        let event = serde_json::json!({"type": "a.b", "data": {"x": data}});
        let a = admit(event.to_string().as_bytes(), BodyFormat::Json, &Limits::default(), OffsetDateTime::now_utc()).unwrap();
        prop_assert_eq!(a.accepted.len(), 1, "{:?}", a.rejected);
    }

    /// An object repeating a key, at the top of an event or nested in it, is refused
    /// naming the key and where it is; the other events of the request are kept.
    #[test]
    fn any_object_with_a_repeated_key_is_refused_naming_it(
        fields in prop::collection::btree_map("[a-z]{1,4}", arb_value(), 1..5),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        again in arb_value(),
        nested in any::<bool>(),
    ) {
        let mut entries: Vec<(String, serde_json::Value)> = fields.into_iter().collect();
        let key = entries[pick.index(entries.len())].0.clone();
        entries.insert(at.index(entries.len() + 1), (key.clone(), again));
        let (event, path) = if nested {
            (format!("{{\"type\":\"a.b\",\"data\":{{\"inner\":{}}}}}", object_text(&entries)), format!("data.inner.{key}"))
        } else {
            entries.retain(|(k, _)| k != "type");
            entries.insert(0, ("type".into(), "a.b".into()));
            if key == "type" {
                return Ok(());
            }
            (object_text(&entries), key.clone())
        };
        let good = r#"{"type":"c.d"}"#;
        let now = OffsetDateTime::now_utc();
        let l = Limits::default();
        for (body, format, line) in [
            (format!("[{good},{event}]"), BodyFormat::Json, None),
            (format!("{good}\n{event}\n"), BodyFormat::Ndjson, Some(2)),
        ] {
            let a = admit(body.as_bytes(), format, &l, now).unwrap();
            prop_assert_eq!(a.accepted.len(), 1);
            prop_assert_eq!((a.rejected[0].index, a.rejected[0].line), (1, line));
            let error = &a.rejected[0].errors[0];
            prop_assert_eq!(&error.field, &path);
            prop_assert!(error.reason.contains(&format!("duplicate key `{key}`")), "{}", error.reason);
        }
        let alone = admit(event.as_bytes(), BodyFormat::Json, &l, now).unwrap();
        prop_assert!(alone.accepted.is_empty());
        prop_assert_eq!(&alone.rejected[0].errors[0].field, &path);
    }
}

#[test]
fn a_repeated_type_is_refused_not_last_one_wins() {
    let a = admit(
        br#"{"type":"a.b","type":"privacy.subject.erased"}"#,
        BodyFormat::Json,
        &Limits::default(),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert!(a.accepted.is_empty());
    assert_eq!(a.rejected[0].errors[0].field, "type");
}

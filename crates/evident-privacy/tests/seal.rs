//! Sealing and opening events: round trips, what the stored bytes reveal, pseudonyms,
//! configuration.

mod common;

use common::{contains, copy, event, privacy};
use evident_model::{Event, canonical_bytes};
use evident_privacy::{MasterKey, PersonalField, Privacy, PrivacyError, Pseudonyms};
use proptest::prelude::*;
use serde_json::{Value, json};

const ALL_FIELDS: &[&str] = &[
    "actor.user_id",
    "actor.ip",
    "actor.user_agent",
    "actor.session_id",
    "data.email",
    "data.profile.phone",
    "data.n",
];

/// What a store would keep and give back: the canonical bytes, decoded.
fn stored(event: &Event) -> Event {
    serde_json::from_slice(&canonical_bytes(event)).expect("canonical bytes decode")
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[a-zé漢🦀 .@-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn actor() -> impl Strategy<Value = Value> {
    let text = || prop::option::of(any::<String>());
    (text(), text(), text(), text()).prop_map(|(user_id, ip, user_agent, session_id)| {
        let mut actor = serde_json::Map::new();
        for (name, value) in [
            ("user_id", user_id),
            ("ip", ip),
            ("user_agent", user_agent),
            ("session_id", session_id),
        ] {
            if let Some(v) = value {
                actor.insert(name.into(), Value::String(v));
            }
        }
        Value::Object(actor)
    })
}

fn data() -> impl Strategy<Value = Value> {
    (
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(|(email, phone, profile_other, n, other)| {
            let mut data = serde_json::Map::new();
            if let Some(v) = email {
                data.insert("email".into(), v);
            }
            if phone.is_some() || profile_other.is_some() {
                let mut profile = serde_json::Map::new();
                if let Some(v) = phone {
                    profile.insert("phone".into(), v);
                }
                if let Some(v) = profile_other {
                    profile.insert("other".into(), v);
                }
                data.insert("profile".into(), Value::Object(profile));
            }
            if let Some(v) = n {
                data.insert("n".into(), v);
            }
            if let Some(v) = other {
                data.insert("other".into(), v);
            }
            Value::Object(data)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn seal_then_open_restores_the_exact_event(
        actors in prop::collection::vec(actor(), 1..4),
        datas in prop::collection::vec(data(), 1..4),
    ) {
        thread_local! {
            static SETUP: (tempfile::TempDir, Privacy) = {
                let dir = tempfile::tempdir().unwrap();
                let privacy = privacy(dir.path(), &MasterKey::generate(), ALL_FIELDS);
                (dir, privacy)
            };
        }
        SETUP.with(|(_, privacy)| {
            let originals: Vec<Event> = actors
                .iter()
                .zip(datas.iter().cycle())
                .map(|(a, d)| event(a.clone(), d.clone()))
                .collect();
            let mut events = originals.clone();
            privacy.seal(&mut events).unwrap();
            for (original, sealed) in originals.iter().zip(&events) {
                prop_assert_eq!(sealed.sealed.is_some(), privacy.applies_to(original));
                let mut back = stored(sealed);
                privacy.open(&mut back).unwrap();
                prop_assert_eq!(&back, original);
            }
            Ok(())
        })?;
    }
}

#[test]
fn sealed_bytes_hold_no_personal_value_and_pseudonyms_track_equality() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let privacy = privacy(
        dir.path(),
        &master,
        &[
            "actor.user_id",
            "actor.ip",
            "actor.user_agent",
            "data.customer.email",
        ],
    );
    let alice = json!({
        "user_id": "alice.wonderland.7731",
        "ip": "203.0.113.77",
        "user_agent": "DistinctiveAgent/9.9 (Quokka)",
        "session_id": "sess-kept-as-is",
    });
    let data = json!({"customer": {"email": "secret-mail@example.org", "tier": "gold"}, "station_id": "ST-1"});
    let mut events = vec![
        event(alice.clone(), data.clone()),
        event(alice.clone(), json!({})),
        event(
            json!({"user_id": "bob.builder.4410", "ip": "203.0.113.77"}),
            json!({}),
        ),
    ];
    privacy.seal(&mut events).unwrap();

    for e in &events {
        let bytes = canonical_bytes(e);
        for secret in [
            "alice.wonderland.7731",
            "bob.builder.4410",
            "203.0.113.77",
            "DistinctiveAgent",
            "Quokka",
            "secret-mail@example.org",
        ] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{secret} appears in {}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    // Fields not configured as personal are kept as they are.
    let first = String::from_utf8(canonical_bytes(&events[0])).unwrap();
    assert!(first.contains("sess-kept-as-is"), "{first}");
    assert!(first.contains(r#""tier":"gold""#), "{first}");
    assert!(first.contains(r#""station_id":"ST-1""#), "{first}");

    let (a0, a1, b) = (&events[0], &events[1], &events[2]);
    let user = |e: &Event| e.actor.user_id.clone().unwrap();
    let ip = |e: &Event| e.actor.ip.clone().unwrap();
    for e in [a0, a1, b] {
        assert!(Pseudonyms::is_pseudonym(&user(e)));
        assert!(Pseudonyms::is_pseudonym(&ip(e)));
    }
    // Equal values, equal pseudonyms, across events; the subject's key id is the
    // pseudonym of its user id.
    assert_eq!(user(a0), user(a1));
    assert_eq!(user(a0), privacy.pseudonym("alice.wonderland.7731"));
    assert_eq!(a0.sealed.as_ref().unwrap().key, user(a0));
    assert_eq!(a1.sealed.as_ref().unwrap().key, user(a0));
    assert_eq!(ip(a0), ip(b));
    assert_eq!(
        a0.data["customer"]["email"],
        json!(privacy.pseudonym("secret-mail@example.org"))
    );
    // Different values, different pseudonyms.
    assert_ne!(user(a0), user(b));
    assert_ne!(user(a0), ip(a0));
    assert_ne!(
        b.sealed.as_ref().unwrap().key,
        a0.sealed.as_ref().unwrap().key
    );
    // Every present personal field is sealed, and only those.
    let fields: Vec<&str> = a0
        .sealed
        .as_ref()
        .unwrap()
        .fields
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "actor.ip",
            "actor.user_agent",
            "actor.user_id",
            "data.customer.email"
        ]
    );

    // Another master key gives other pseudonyms for the same values.
    let other_dir = tempfile::tempdir().unwrap();
    let other = common::privacy(other_dir.path(), &MasterKey::generate(), &["actor.user_id"]);
    let mut elsewhere = vec![event(alice, json!({}))];
    other.seal(&mut elsewhere).unwrap();
    assert_ne!(user(&elsewhere[0]), user(a0));
    assert_ne!(
        other.pseudonym("alice.wonderland.7731"),
        privacy.pseudonym("alice.wonderland.7731")
    );
    assert_eq!(
        privacy.pseudonym("alice.wonderland.7731"),
        Pseudonyms::new(&copy(&master)).of("alice.wonderland.7731")
    );
}

#[test]
fn non_string_data_values_are_pseudonymized_from_their_json_and_restored_with_their_type() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(
        dir.path(),
        &MasterKey::generate(),
        &["data.card", "data.pin"],
    );
    let original = event(
        json!({}),
        json!({"card": {"number": 4111111111111111u64, "exp": "12/30"}, "pin": 1234}),
    );
    let mut events = vec![original.clone()];
    privacy.seal(&mut events).unwrap();
    let sealed = &events[0];
    assert_eq!(
        sealed.data["card"],
        json!(privacy.pseudonym(r#"{"exp":"12/30","number":4111111111111111}"#))
    );
    assert_eq!(sealed.data["pin"], json!(privacy.pseudonym("1234")));
    // The subject is the first field present in configured order.
    assert_eq!(
        sealed.sealed.as_ref().unwrap().key,
        privacy.pseudonym(r#"{"exp":"12/30","number":4111111111111111}"#)
    );
    let mut back = stored(sealed);
    privacy.open(&mut back).unwrap();
    assert_eq!(back, original);
    assert_eq!(back.data["pin"], json!(1234));
}

#[test]
fn subject_is_the_first_present_field_in_configured_order() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(
        dir.path(),
        &MasterKey::generate(),
        &["actor.ip", "actor.user_id"],
    );
    let mut events = vec![
        event(json!({"user_id": "carol", "ip": "198.51.100.5"}), json!({})),
        event(json!({"user_id": "carol"}), json!({})),
    ];
    privacy.seal(&mut events).unwrap();
    assert_eq!(
        events[0].sealed.as_ref().unwrap().key,
        privacy.pseudonym("198.51.100.5")
    );
    assert_eq!(
        events[1].sealed.as_ref().unwrap().key,
        privacy.pseudonym("carol")
    );
}

#[test]
fn events_without_personal_fields_or_already_sealed_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(
        dir.path(),
        &MasterKey::generate(),
        &["actor.user_id", "data.email"],
    );
    let plain = event(json!({"session_id": "s1"}), json!({"email": null, "x": 1}));
    assert!(!privacy.applies_to(&plain));
    let mut events = vec![plain.clone(), event(json!({"user_id": "dave"}), json!({}))];
    privacy.seal(&mut events).unwrap();
    assert_eq!(events[0], plain);
    assert!(events[1].sealed.is_some());
    assert!(!privacy.applies_to(&events[1]));

    let once = events[1].clone();
    privacy.seal(&mut events).unwrap();
    assert_eq!(events[1], once, "sealing twice changes nothing");
    assert_eq!(privacy.keys().len().unwrap(), 1);

    // Opening an event that is not sealed leaves it as it is.
    let mut same = plain.clone();
    privacy.open(&mut same).unwrap();
    assert_eq!(same, plain);
}

#[test]
fn hide_keeps_pseudonyms_and_drops_ciphertexts() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(dir.path(), &MasterKey::generate(), &["actor.user_id"]);
    let mut events = vec![event(json!({"user_id": "erin"}), json!({}))];
    privacy.seal(&mut events).unwrap();
    let mut hidden = events[0].clone();
    Privacy::hide(&mut hidden);
    assert_eq!(hidden.sealed, None);
    assert_eq!(hidden.actor.user_id, Some(privacy.pseudonym("erin")));
    assert!(
        !String::from_utf8(canonical_bytes(&hidden))
            .unwrap()
            .contains("sealed")
    );
}

#[test]
fn fields_sealed_under_an_older_configuration_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let original = event(
        json!({"user_id": "frank", "session_id": "sess-9"}),
        json!({"email": "frank@example.com", "note": "hi"}),
    );
    let mut events = vec![original.clone()];
    {
        let before = privacy(
            dir.path(),
            &master,
            &["actor.user_id", "actor.session_id", "data.email"],
        );
        before.seal(&mut events).unwrap();
    }
    let now = privacy(dir.path(), &copy(&master), &["actor.ip"]);
    let mut back = stored(&events[0]);
    now.open(&mut back).unwrap();
    assert_eq!(back, original);
}

#[test]
fn overlapping_data_paths_round_trip_in_either_order() {
    for fields in [["data.a.b", "data.a"], ["data.a", "data.a.b"]] {
        let dir = tempfile::tempdir().unwrap();
        let privacy = privacy(dir.path(), &MasterKey::generate(), &fields);
        let original = event(json!({}), json!({"a": {"b": "inner", "c": 3}}));
        let mut events = vec![original.clone()];
        privacy.seal(&mut events).unwrap();
        assert!(Pseudonyms::is_pseudonym(
            events[0].data["a"].as_str().unwrap()
        ));
        let mut back = stored(&events[0]);
        privacy.open(&mut back).unwrap();
        assert_eq!(back, original, "{fields:?}");
    }
}

#[test]
fn repeated_fields_in_the_configuration_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(
        dir.path(),
        &MasterKey::generate(),
        &["data.email", "actor.user_id", "data.email"],
    );
    assert_eq!(
        privacy.fields(),
        [
            PersonalField::Data(vec!["email".into()]),
            PersonalField::UserId
        ]
    );
    let original = event(
        json!({"user_id": "gina"}),
        json!({"email": "g@example.com"}),
    );
    let mut events = vec![original.clone()];
    privacy.seal(&mut events).unwrap();
    privacy.open(&mut events[0]).unwrap();
    assert_eq!(events[0], original);
}

#[test]
fn unknown_sealed_field_paths_are_refused_and_the_event_kept() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(dir.path(), &MasterKey::generate(), &["actor.user_id"]);
    let mut events = vec![event(json!({"user_id": "hank"}), json!({}))];
    privacy.seal(&mut events).unwrap();
    let mut bad = events[0].clone();
    let ciphertext = bad.sealed.as_ref().unwrap().fields["actor.user_id"].clone();
    bad.sealed
        .as_mut()
        .unwrap()
        .fields
        .insert("actor.name".into(), ciphertext);
    let before = bad.clone();
    let err = privacy.open(&mut bad).unwrap_err();
    assert!(matches!(err, PrivacyError::Field(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("\"actor.name\""), "{text}");
    assert!(text.contains(&bad.id.to_string()), "{text}");
    assert_eq!(bad, before);
}

#[test]
fn personal_field_parse_names_the_bad_input() {
    for good in [
        "actor.user_id",
        "actor.ip",
        "actor.user_agent",
        "actor.session_id",
        "data.email",
        "data.customer.phone.mobile",
    ] {
        assert_eq!(PersonalField::parse(good).unwrap().path(), good);
    }
    assert_eq!(
        PersonalField::parse("data.a.b").unwrap(),
        PersonalField::Data(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        PersonalField::defaults(),
        [
            PersonalField::UserId,
            PersonalField::Ip,
            PersonalField::UserAgent
        ]
    );
    for bad in [
        "",
        "actor.name",
        "actor",
        "user_id",
        "data",
        "data.",
        "data..x",
        "data.x.",
        "target.resource",
        " actor.ip",
    ] {
        let err = PersonalField::parse(bad).unwrap_err();
        assert!(matches!(err, PrivacyError::Field(_)), "{bad:?}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("{bad:?}")), "{bad:?}: {text}");
        assert!(
            text.contains("actor.user_id") && text.contains("data.<path>"),
            "{text}"
        );
    }
}

#[test]
fn privacy_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Privacy>();

    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(dir.path(), &MasterKey::generate(), &["actor.user_id"]);
    let sealed: Vec<Vec<Event>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut events: Vec<Event> = (0..50)
                        .map(|i| event(json!({"user_id": format!("user-{i}")}), json!({})))
                        .collect();
                    privacy.seal(&mut events).unwrap();
                    events
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(privacy.keys().len().unwrap(), 50);
    // Every thread's events open with the one key each subject ended up with.
    for events in sealed {
        for (i, mut e) in events.into_iter().enumerate() {
            privacy.open(&mut e).unwrap();
            assert_eq!(e.actor.user_id, Some(format!("user-{i}")));
        }
    }
}

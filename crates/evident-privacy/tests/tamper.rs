//! Sealed values are bound to their key, key id, event and field: any change fails to open.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{event, privacy};
use evident_privacy::{DataKey, MasterKey, PrivacyError, open_value, seal_value};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

fn is_open_error(result: Result<Vec<u8>, PrivacyError>, field: &str) -> bool {
    matches!(result, Err(PrivacyError::Open { field: f }) if f == field)
}

#[test]
fn ten_thousand_random_bit_flips_all_fail_to_open() {
    let key = DataKey::generate();
    let key_id = "ps_AAAAAAAAAAAAAAAAAAAAAA";
    let event_id = Uuid::new_v4();
    let field = "actor.user_id";
    let plaintexts: [&[u8]; 4] = [
        b"",
        b"\"alice\"",
        b"\"203.0.113.77\"",
        br#"{"number":4111111111111111,"exp":"12/30","name":"A very long name indeed"}"#,
    ];
    let sealed: Vec<String> = plaintexts
        .iter()
        .map(|p| seal_value(&key, key_id, event_id, field, p))
        .collect();
    for (s, p) in sealed.iter().zip(plaintexts) {
        assert_eq!(open_value(&key, key_id, event_id, field, s).unwrap(), p);
    }

    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut failed = 0;
    let (mut in_nonce, mut in_body) = (0, 0);
    const FLIPS: usize = 10_000;
    for _ in 0..FLIPS {
        let which = rng.random_range(0..sealed.len());
        let mut raw = STANDARD.decode(&sealed[which]).unwrap();
        let bit = rng.random_range(0..raw.len() * 8);
        raw[bit / 8] ^= 1 << (bit % 8);
        if bit / 8 < 12 {
            in_nonce += 1;
        } else {
            in_body += 1;
        }
        let flipped = STANDARD.encode(&raw);
        if is_open_error(open_value(&key, key_id, event_id, field, &flipped), field) {
            failed += 1;
        }
    }
    assert_eq!(failed, FLIPS, "every flipped value must fail to open");
    assert!(
        in_nonce > 0 && in_body > 0,
        "flips hit nonce and ciphertext/tag"
    );
}

#[test]
fn changing_key_key_id_event_id_or_field_fails_to_open() {
    let key = DataKey::generate();
    let key_id = "ps_AAAAAAAAAAAAAAAAAAAAAA";
    let event_id = Uuid::new_v4();
    let sealed = seal_value(&key, key_id, event_id, "actor.ip", b"\"10.0.0.1\"");
    assert!(open_value(&key, key_id, event_id, "actor.ip", &sealed).is_ok());

    let other_key = DataKey::generate();
    assert!(is_open_error(
        open_value(&other_key, key_id, event_id, "actor.ip", &sealed),
        "actor.ip"
    ));
    assert!(is_open_error(
        open_value(
            &key,
            "ps_AAAAAAAAAAAAAAAAAAAAAB",
            event_id,
            "actor.ip",
            &sealed
        ),
        "actor.ip"
    ));
    assert!(is_open_error(
        open_value(&key, key_id, Uuid::new_v4(), "actor.ip", &sealed),
        "actor.ip"
    ));
    assert!(is_open_error(
        open_value(&key, key_id, event_id, "actor.user_id", &sealed),
        "actor.user_id"
    ));
    // Truncated, extended, not base64, empty.
    let raw = STANDARD.decode(&sealed).unwrap();
    for text in [
        STANDARD.encode(&raw[..raw.len() - 1]),
        STANDARD.encode([raw.as_slice(), b"x"].concat()),
        STANDARD.encode(&raw[..27]),
        format!("{sealed}!"),
        sealed.trim_end_matches('=').to_string(),
        String::new(),
    ] {
        assert!(
            is_open_error(
                open_value(&key, key_id, event_id, "actor.ip", &text),
                "actor.ip"
            ),
            "{text:?}"
        );
    }
    let err = open_value(&key, key_id, event_id, "actor.ip", "").unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not decrypt actor.ip: the ciphertext, its key or its event id was altered"
    );
}

#[test]
fn moving_a_ciphertext_to_another_field_or_event_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(
        dir.path(),
        &MasterKey::generate(),
        &["actor.user_id", "actor.ip"],
    );
    let mut events = vec![
        event(json!({"user_id": "ivan", "ip": "192.0.2.1"}), json!({})),
        event(json!({"user_id": "ivan", "ip": "192.0.2.2"}), json!({})),
    ];
    privacy.seal(&mut events).unwrap();

    // Another field of the same event.
    let mut swapped = events[0].clone();
    let fields = &mut swapped.sealed.as_mut().unwrap().fields;
    let ip = fields["actor.ip"].clone();
    fields.insert("actor.user_id".into(), ip);
    let before = swapped.clone();
    let err = privacy.open(&mut swapped).unwrap_err();
    assert!(
        matches!(&err, PrivacyError::Open { field } if field == "actor.user_id"),
        "{err:?}"
    );
    assert_eq!(swapped, before, "a failed open leaves the event unchanged");

    // The same field of another event of the same subject.
    let mut moved = events[1].clone();
    let from_first = events[0].sealed.as_ref().unwrap().fields["actor.ip"].clone();
    moved
        .sealed
        .as_mut()
        .unwrap()
        .fields
        .insert("actor.ip".into(), from_first);
    let err = privacy.open(&mut moved).unwrap_err();
    assert!(
        matches!(&err, PrivacyError::Open { field } if field == "actor.ip"),
        "{err:?}"
    );

    // The event id changed.
    let mut renumbered = events[0].clone();
    renumbered.id = Uuid::new_v4();
    assert!(matches!(
        privacy.open(&mut renumbered),
        Err(PrivacyError::Open { .. })
    ));

    // A flipped bit in one stored ciphertext.
    let mut flipped = events[0].clone();
    let value = flipped
        .sealed
        .as_mut()
        .unwrap()
        .fields
        .get_mut("actor.ip")
        .unwrap();
    let mut raw = STANDARD.decode(&*value).unwrap();
    raw[20] ^= 0x01;
    *value = STANDARD.encode(raw);
    assert!(matches!(
        privacy.open(&mut flipped),
        Err(PrivacyError::Open { field }) if field == "actor.ip"
    ));

    // The untouched events still open.
    for mut e in events {
        privacy.open(&mut e).unwrap();
    }
}

#[test]
fn a_ciphertext_moved_to_another_subject_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(dir.path(), &MasterKey::generate(), &["actor.user_id"]);
    let mut events = vec![
        event(json!({"user_id": "judy"}), json!({})),
        event(json!({"user_id": "karl"}), json!({})),
    ];
    privacy.seal(&mut events).unwrap();
    // Claim judy's event belongs to karl.
    let mut claimed = events[0].clone();
    claimed.sealed.as_mut().unwrap().key = events[1].sealed.as_ref().unwrap().key.clone();
    assert!(matches!(
        privacy.open(&mut claimed),
        Err(PrivacyError::Open { .. })
    ));
}

proptest! {
    #[test]
    fn open_value_never_panics_on_arbitrary_input(
        sealed in ".{0,120}",
        raw in prop::collection::vec(any::<u8>(), 0..120),
        key_id in ".{0,30}",
        field in ".{0,30}",
        id in any::<u128>(),
    ) {
        let key = DataKey::from_bytes([7; 32]);
        let id = Uuid::from_u128(id);
        prop_assert!(open_value(&key, &key_id, id, &field, &sealed).is_err());
        prop_assert!(open_value(&key, &key_id, id, &field, &STANDARD.encode(&raw)).is_err());
    }

    #[test]
    fn seal_value_round_trips_any_bytes(
        plain in prop::collection::vec(any::<u8>(), 0..300),
        key_id in ".{0,30}",
        field in ".{0,30}",
        id in any::<u128>(),
    ) {
        let key = DataKey::generate();
        let id = Uuid::from_u128(id);
        let sealed = seal_value(&key, &key_id, id, &field, &plain);
        prop_assert_eq!(open_value(&key, &key_id, id, &field, &sealed).unwrap(), plain);
    }
}

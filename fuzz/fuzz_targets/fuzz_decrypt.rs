//! Arbitrary bytes as a sealed field value and what it is bound to: opening must never
//! panic, and must refuse anything but a value sealed under the same key, key id, event
//! id and field. Any plaintext sealed under a key opens to the same bytes, and to nothing
//! once the value, the key, the key id, the event id or the field differs.
//!
//! Input layout: the first 16 bytes are the event id (missing bytes are zero); the rest
//! is split at newlines into the sealed text, the key id and the field path (as lossy
//! UTF-8; missing parts are empty).

#![no_main]

use evident_privacy::{DataKey, open_value, seal_value};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const KEY: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    let (id_bytes, rest) = data.split_at(data.len().min(16));
    let mut id = [0u8; 16];
    id[..id_bytes.len()].copy_from_slice(id_bytes);
    let event_id = Uuid::from_bytes(id);
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let sealed = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let key_id = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let field = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let key = DataKey::from_bytes(KEY);

    // Arbitrary input: an answer either way, never a panic.
    if let Err(e) = open_value(&key, &key_id, event_id, &field, &sealed) {
        assert!(e.to_string().contains(field.as_ref()), "{e}");
    }

    // Round trip of the input as plaintext, and refusal of every change around it.
    let plain = rest;
    let value = seal_value(&key, &key_id, event_id, &field, plain);
    let opened = open_value(&key, &key_id, event_id, &field, &value).expect("own value opens");
    assert_eq!(opened, plain);

    let other_key = DataKey::from_bytes([0x43; 32]);
    assert!(open_value(&other_key, &key_id, event_id, &field, &value).is_err());
    assert!(open_value(&key, &format!("{key_id}x"), event_id, &field, &value).is_err());
    assert!(
        open_value(
            &key,
            &key_id,
            Uuid::from_u128(event_id.as_u128() ^ 1),
            &field,
            &value
        )
        .is_err()
    );
    assert!(open_value(&key, &key_id, event_id, &format!("{field}x"), &value).is_err());
    // Moving a byte from the key id to the field keeps their concatenation, not the value.
    if let Some(last) = key_id.chars().last() {
        let shorter = &key_id[..key_id.len() - last.len_utf8()];
        let longer = format!("{last}{field}");
        assert!(open_value(&key, shorter, event_id, &longer, &value).is_err());
    }

    // One flipped bit anywhere in the decoded value.
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut raw = engine.decode(&value).expect("own value is base64");
    let bit = data.iter().map(|b| *b as usize).sum::<usize>() % (raw.len() * 8);
    raw[bit / 8] ^= 1 << (bit % 8);
    let flipped = engine.encode(&raw);
    assert!(open_value(&key, &key_id, event_id, &field, &flipped).is_err());
});

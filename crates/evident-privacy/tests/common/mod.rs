//! Helpers shared by the integration tests.

#![allow(dead_code)]

use evident_model::Event;
use evident_privacy::{MasterKey, PersonalField, Privacy, SubjectKeys};
use serde_json::{Value, json};
use std::path::Path;

/// An event with the given actor and data objects and a fresh id.
pub fn event(actor: Value, data: Value) -> Event {
    serde_json::from_value(json!({
        "id": uuid::Uuid::new_v4(),
        "time": "2026-03-01T10:00:00.123456Z",
        "received_at": "2026-03-01T10:00:01Z",
        "type": "auth.login.failure",
        "category": "authentication",
        "severity": "medium",
        "priority": "info",
        "outcome": "failure",
        "source": "portal",
        "actor": actor,
        "target": {"resource": "/admin"},
        "data": data,
    }))
    .expect("a valid event")
}

/// Protection of `fields` with the key store `keys.db` in `dir`.
pub fn privacy(dir: &Path, master: &MasterKey, fields: &[&str]) -> Privacy {
    let keys = SubjectKeys::open(&dir.join("keys.db"), master).expect("key store opens");
    let fields = fields
        .iter()
        .map(|f| PersonalField::parse(f).expect("valid field"))
        .collect();
    Privacy::new(master, keys, fields)
}

/// The same master key again, from its base64 form.
pub fn copy(master: &MasterKey) -> MasterKey {
    MasterKey::from_base64(&master.to_base64()).expect("own base64")
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

//! The key store: persistence, the master key check, erasure, batches.

mod common;

use common::{contains, copy, event, privacy};
use evident_privacy::{KeyStatus, MasterKey, Privacy, PrivacyError, Pseudonyms, SubjectKeys};
use serde_json::json;
use std::path::Path;

fn wrapped_blob(db: &Path, id: &str) -> Vec<u8> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT wrapped FROM subject_keys WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

fn raw(path: &Path) -> Vec<u8> {
    match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

#[test]
fn keys_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let original = event(json!({"user_id": "lena", "ip": "192.0.2.9"}), json!({}));
    let mut events = vec![original.clone()];
    {
        let privacy = privacy(dir.path(), &master, &["actor.user_id", "actor.ip"]);
        privacy.seal(&mut events).unwrap();
    }
    let reopened = privacy(dir.path(), &copy(&master), &["actor.user_id", "actor.ip"]);
    assert_eq!(reopened.keys().len().unwrap(), 1);
    let mut back = events[0].clone();
    reopened.open(&mut back).unwrap();
    assert_eq!(back, original);
    let (key, status) = reopened.status("lena").unwrap();
    assert_eq!(key, events[0].sealed.as_ref().unwrap().key);
    assert!(matches!(status, KeyStatus::Held { created_at } if created_at > 1_700_000_000));
    assert_eq!(reopened.status("nobody").unwrap().1, KeyStatus::Unknown);
}

#[test]
fn a_different_master_key_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let master = MasterKey::generate();
    {
        let keys = SubjectKeys::open(&db, &master).unwrap();
        keys.keys_for(&["ps_subject"]).unwrap();
    }
    let err = SubjectKeys::open(&db, &MasterKey::generate()).unwrap_err();
    assert!(matches!(err, PrivacyError::KeyStore(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("the master key does not match this key store"),
        "{text}"
    );
    assert!(text.contains(&db.display().to_string()), "{text}");
    // The right key still opens it.
    SubjectKeys::open(&db, &master).unwrap();
}

#[test]
fn erasure_makes_a_subjects_events_unreadable_and_keeps_others() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(
        dir.path(),
        &MasterKey::generate(),
        &["actor.user_id", "actor.ip", "data.email"],
    );
    let mallory = event(
        json!({"user_id": "mallory", "ip": "198.51.100.66"}),
        json!({"email": "m@example.com", "kept": true}),
    );
    let nina = event(json!({"user_id": "nina"}), json!({}));
    let mut events = vec![mallory.clone(), nina.clone()];
    privacy.seal(&mut events).unwrap();
    let stored_mallory = events[0].clone();
    let key = stored_mallory.sealed.as_ref().unwrap().key.clone();
    assert!(privacy.keys().get(&key).unwrap().is_some());

    let erasure = privacy.erase("mallory").unwrap();
    assert_eq!(erasure.key, key);
    assert!(erasure.had_key);
    assert!(privacy.keys().get(&key).unwrap().is_none());
    let (status_key, status) = privacy.status("mallory").unwrap();
    assert_eq!(status_key, key);
    assert!(matches!(status, KeyStatus::Erased { erased_at } if erased_at > 1_700_000_000));

    let mut read = stored_mallory.clone();
    privacy.open(&mut read).unwrap();
    let sealed = read.sealed.as_ref().unwrap();
    assert!(sealed.erased);
    assert!(sealed.fields.is_empty());
    assert_eq!(sealed.key, key);
    assert_eq!(read.actor.user_id, Some(privacy.pseudonym("mallory")));
    assert_eq!(read.actor.ip, Some(privacy.pseudonym("198.51.100.66")));
    assert_eq!(
        read.data["email"],
        json!(privacy.pseudonym("m@example.com"))
    );
    assert_eq!(read.data["kept"], json!(true));
    let answer = serde_json::to_value(&read).unwrap();
    assert_eq!(answer["sealed"], json!({"key": key, "erased": true}));

    // Other subjects are untouched.
    let mut other = events[1].clone();
    privacy.open(&mut other).unwrap();
    assert_eq!(other, nina);

    // Erasing again, or erasing someone never seen, holds no key but is recorded.
    assert!(!privacy.erase("mallory").unwrap().had_key);
    let never = privacy.erase("never-seen").unwrap();
    assert!(!never.had_key);
    assert!(matches!(
        privacy.status("never-seen").unwrap().1,
        KeyStatus::Erased { .. }
    ));
    assert_eq!(privacy.keys().len().unwrap(), 1);
}

#[test]
fn erasure_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let mut events = vec![event(json!({"user_id": "oscar"}), json!({}))];
    {
        let privacy = privacy(dir.path(), &master, &["actor.user_id"]);
        privacy.seal(&mut events).unwrap();
        privacy.erase("oscar").unwrap();
    }
    let privacy = privacy(dir.path(), &copy(&master), &["actor.user_id"]);
    assert!(matches!(
        privacy.status("oscar").unwrap().1,
        KeyStatus::Erased { .. }
    ));
    privacy.open(&mut events[0]).unwrap();
    assert!(events[0].sealed.as_ref().unwrap().erased);
}

#[test]
fn after_erasure_new_events_get_a_new_key_and_old_ones_stay_erased() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = privacy(
        dir.path(),
        &MasterKey::generate(),
        &["actor.user_id", "actor.ip"],
    );
    let mut old = vec![event(
        json!({"user_id": "peggy", "ip": "192.0.2.50"}),
        json!({}),
    )];
    privacy.seal(&mut old).unwrap();
    privacy.erase("peggy").unwrap();

    let fresh = event(json!({"user_id": "peggy", "ip": "192.0.2.51"}), json!({}));
    let mut new = vec![fresh.clone()];
    privacy.seal(&mut new).unwrap();
    assert_eq!(
        new[0].sealed.as_ref().unwrap().key,
        old[0].sealed.as_ref().unwrap().key,
        "same subject, same key id"
    );
    assert!(matches!(
        privacy.status("peggy").unwrap().1,
        KeyStatus::Held { .. }
    ));

    let mut read_new = new[0].clone();
    privacy.open(&mut read_new).unwrap();
    assert_eq!(read_new, fresh);

    let mut read_old = old[0].clone();
    privacy.open(&mut read_old).unwrap();
    assert!(read_old.sealed.as_ref().unwrap().erased);
    assert_eq!(read_old.actor.user_id, Some(privacy.pseudonym("peggy")));
    assert_eq!(read_old.actor.ip, Some(privacy.pseudonym("192.0.2.50")));
}

#[test]
fn erased_key_bytes_do_not_remain_in_the_key_store_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let wal = dir.path().join("keys.db-wal");
    let keys = SubjectKeys::open(&db, &MasterKey::generate()).unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("ps_subject_{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    keys.keys_for(&refs).unwrap();
    let victim = "ps_subject_7";
    let wrapped = wrapped_blob(&db, victim);
    assert_eq!(wrapped.len(), 12 + 32 + 16);
    let neighbour = wrapped_blob(&db, "ps_subject_8");

    let mut before = raw(&db);
    before.extend(raw(&wal));
    assert!(
        contains(&before, &wrapped),
        "the check can see the wrapped key"
    );

    assert!(keys.erase(victim).unwrap());
    let (db_after, wal_after) = (raw(&db), raw(&wal));
    assert!(
        !contains(&db_after, &wrapped),
        "wrapped key left in the database file"
    );
    assert!(
        !contains(&wal_after, &wrapped),
        "wrapped key left in the write-ahead log"
    );
    assert!(
        contains(&db_after, &neighbour) || contains(&wal_after, &neighbour),
        "other keys are still there"
    );
    assert_eq!(keys.len().unwrap(), 19);
}

#[test]
fn a_batch_of_new_subjects_is_stored_together() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/dir/keys.db");
    let master = MasterKey::generate();
    let ids: Vec<String> = (0..1000).map(|i| format!("ps_batch_{i:04}")).collect();
    let mut refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    refs.push("ps_batch_0000"); // a repeat within the batch gets the same key
    let given = {
        let keys = SubjectKeys::open(&db, &master).unwrap();
        assert!(keys.is_empty().unwrap());
        let given = keys.keys_for(&refs).unwrap();
        assert_eq!(given.len(), 1000);
        assert_eq!(keys.len().unwrap(), 1000);
        // Asking again gives the same keys and makes none.
        let again = keys.keys_for(&refs[..10]).unwrap();
        for (id, key) in &again {
            assert_eq!(key, &given[id]);
        }
        assert_eq!(keys.len().unwrap(), 1000);
        given
    };
    let keys = SubjectKeys::open(&db, &copy(&master)).unwrap();
    assert_eq!(keys.len().unwrap(), 1000);
    for id in &ids {
        let held = keys.get(id).unwrap().expect("key stored");
        assert_eq!(*held, *given[id], "{id}");
    }
    assert!(keys.get("ps_not_there").unwrap().is_none());
    assert_eq!(keys.len().unwrap(), 1000, "get makes no key");
    assert_eq!(keys.status("ps_not_there").unwrap(), KeyStatus::Unknown);
}

#[test]
fn each_subject_has_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = SubjectKeys::open(&dir.path().join("keys.db"), &MasterKey::generate()).unwrap();
    let given = keys.keys_for(&["ps_a", "ps_b"]).unwrap();
    assert_ne!(given["ps_a"], given["ps_b"]);
}

#[test]
fn erasure_is_keyed_by_pseudonym_not_plain_value() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let privacy: Privacy = privacy(dir.path(), &master, &["actor.user_id"]);
    privacy
        .seal(&mut [event(json!({"user_id": "quentin"}), json!({}))])
        .unwrap();
    privacy.erase("quentin").unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("keys.db")).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM erasures")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, [Pseudonyms::new(&master).of("quentin")]);
}

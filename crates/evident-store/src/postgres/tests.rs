//! The conformance suite and PostgreSQL-specific behaviour, each test in a database of
//! its own on a real server.

use super::PgStore;
use crate::retention::RetentionPolicy;
use crate::testsuite::{self, ScratchPostgres};
use crate::{EventStore, KeyStore, Role};
use evident_model::Severity;

async fn store() -> (ScratchPostgres, PgStore) {
    let db = ScratchPostgres::create().await;
    let store = PgStore::connect(&db.url, RetentionPolicy::default())
        .await
        .unwrap();
    (db, store)
}

#[tokio::test]
async fn append_assigns_gap_free_seq_and_dedups() {
    let (_db, s) = store().await;
    testsuite::append_assigns_gap_free_seq_and_dedups(&s).await;
}

#[tokio::test]
async fn query_filters_and_paginates() {
    let (_db, s) = store().await;
    testsuite::query_filters_and_paginates(&s).await;
}

#[tokio::test]
async fn stats_count_groups_and_buckets() {
    let (_db, s) = store().await;
    testsuite::stats_count_groups_and_buckets(&s).await;
}

#[tokio::test]
async fn dead_letters_round_trip() {
    let (_db, s) = store().await;
    testsuite::dead_letters_round_trip(&s).await;
}

#[tokio::test]
async fn folds_summarize_exactly_once() {
    let (_db, s) = store().await;
    testsuite::folds_summarize_exactly_once(&s).await;
}

#[tokio::test]
async fn keys_are_found_by_secret_and_stored_hashed() {
    let (_db, s) = store().await;
    let secret = s
        .create_key(Role::Read, Some(vec!["plant-1".into()]), Some("r".into()))
        .await
        .unwrap();
    let key = s.find_key(&secret).await.unwrap().expect("key found");
    assert_eq!(key.role, Role::Read);
    assert_eq!(key.facilities, Some(vec!["plant-1".to_string()]));
    assert!(s.find_key("not-a-key").await.unwrap().is_none());
    assert_eq!(s.count_keys().await.unwrap(), 1);
    let stored = s
        .client()
        .await
        .unwrap()
        .query(
            "SELECT hash::text || coalesce(label, '') FROM api_keys",
            &[],
        )
        .await
        .unwrap();
    for row in stored {
        assert!(
            !row.get::<_, String>(0).contains(&secret),
            "secret must not be stored"
        );
    }
}

#[tokio::test]
async fn sequence_and_ids_survive_reconnect_and_migrations_run_once() {
    let (db, s) = store().await;
    let first = testsuite::event("auth.login", 1, Severity::Info);
    s.append(vec![first.clone()].into()).await.unwrap();
    drop(s);
    let again = PgStore::connect(&db.url, RetentionPolicy::default())
        .await
        .unwrap();
    let out = again
        .append(vec![first, testsuite::event("auth.login", 2, Severity::Info)].into())
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![crate::Appended::Duplicate, crate::Appended::Stored(2)]
    );
}

#[tokio::test]
async fn null_characters_are_stored_and_returned_exactly() {
    let (_db, s) = store().await;
    let mut e = testsuite::event("auth.login", 1, Severity::Info).event;
    e.actor.user_id = Some("bad\0user".into());
    e.data.insert("k\0ey".into(), serde_json::json!("va\0lue"));
    let encoded = evident_model::EncodedEvent::new(e.clone());
    s.append(vec![encoded.clone()].into()).await.unwrap();
    let got = s.get(e.id, None).await.unwrap().expect("stored");
    assert_eq!(got.bytes, encoded.bytes, "the canonical body keeps the NUL");
}

#[tokio::test]
async fn retention_drops_expired_partitions_and_trims_the_boundary_month() {
    use time::macros::datetime;
    let (_db, s) = store().await;
    let at = |t: time::OffsetDateTime, ty: &str| {
        let mut e = testsuite::event(ty, 0, Severity::Info).event;
        e.time = t;
        evident_model::EncodedEvent::new(e)
    };
    let old_debug = at(datetime!(2024-01-10 00:00 UTC), "debug.trace");
    let boundary_debug_old = at(datetime!(2024-03-02 00:00 UTC), "debug.trace");
    let boundary_debug_new = at(datetime!(2024-03-20 00:00 UTC), "debug.trace");
    let old_login = at(datetime!(2024-01-10 00:00 UTC), "auth.login");
    let batch = vec![
        old_debug.clone(),
        boundary_debug_old.clone(),
        boundary_debug_new.clone(),
        old_login.clone(),
    ];
    s.append(batch.into()).await.unwrap();
    // 30-day debug retention as of 2024-04-10: cutoff 2024-03-11.
    let report = s
        .enforce_retention(datetime!(2024-04-10 00:00 UTC))
        .await
        .unwrap();
    assert_eq!(report.dropped, vec!["events_r30_202401".to_string()]);
    assert_eq!(report.trimmed, 1);
    let present = |id| {
        let s = s.clone();
        async move { s.get(id, None).await.unwrap().is_some() }
    };
    assert!(!present(old_debug.event.id).await);
    assert!(!present(boundary_debug_old.event.id).await);
    assert!(present(boundary_debug_new.event.id).await);
    assert!(present(old_login.event.id).await, "7-year class untouched");
    // The expired ids are gone too, so the id table does not grow forever.
    let again = s.append(vec![old_debug].into()).await.unwrap();
    assert!(matches!(again[0], crate::Appended::Stored(_)));
}

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
async fn data_filters_page_newest_first() {
    let (_db, s) = store().await;
    testsuite::data_filters_page_newest_first(&s).await;
}

/// Builds segments until they cover all but the last few events (the background
/// builder may hold the lock meanwhile); returns the levels the segments have.
async fn index_fully(s: &PgStore, stored: usize) -> Vec<i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        s.build_term_segments().await.unwrap();
        let client = s.client().await.unwrap();
        let indexed = super::term_segments::indexed(&**client).await.unwrap();
        if indexed as usize + crate::postings::SEGMENT_EVENTS > stored {
            return client
                .query(
                    "SELECT DISTINCT level FROM term_segments ORDER BY level",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "segments stuck at seq {indexed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn data_filters_agree_with_a_scan_across_segments_and_merges() {
    let (_db, s) = store().await;
    let stored = testsuite::append_in_batches(&s, testsuite::data_mix(0, 700)).await;
    // Whatever the background builder has done so far, answers are the same.
    testsuite::data_filters_agree_with_a_scan(&s, &stored).await;
    let levels = index_fully(&s, stored.len()).await;
    assert!(
        levels.contains(&1) && levels.contains(&2),
        "merged segments: {levels:?}"
    );
    testsuite::data_filters_agree_with_a_scan(&s, &stored).await;
}

#[tokio::test]
async fn a_store_from_before_the_term_segments_is_indexed_after_connecting() {
    let (db, s) = store().await;
    let stored = testsuite::append_in_batches(&s, testsuite::data_mix(0, 300)).await;
    index_fully(&s, stored.len()).await;
    s.client()
        .await
        .unwrap()
        .batch_execute("DELETE FROM term_postings; DELETE FROM term_segments;")
        .await
        .unwrap();
    drop(s);
    let s = PgStore::connect(&db.url, RetentionPolicy::default())
        .await
        .unwrap();
    index_fully(&s, stored.len()).await;
    testsuite::data_filters_agree_with_a_scan(&s, &stored).await;
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
async fn findings_fold_link_page_and_change_status() {
    let (_db, s) = store().await;
    testsuite::findings_fold_link_page_and_change_status(&s).await;
}

#[tokio::test]
async fn detection_reads_committed_events_and_keeps_state() {
    let (_db, s) = store().await;
    testsuite::detection_reads_committed_events_and_keeps_state(&s).await;
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
    let (_db, s) = store().await;
    let report = testsuite::retention_removes_expired_events(&s).await;
    assert_eq!(
        report.dropped_partitions,
        vec!["events_r30_202401".to_string()],
        "the expired month goes as a whole partition"
    );
}

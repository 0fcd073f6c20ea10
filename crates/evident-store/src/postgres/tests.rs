//! The conformance suite and PostgreSQL-specific behaviour, each test in a database of
//! its own on a real server.

use super::PgStore;
use crate::retention::RetentionPolicy;
use crate::roles::*;
use crate::testsuite::{self, ScratchPostgres};
use crate::{IntegrityLog, Proved};
use evident_integrity::merkle::{self, leaf_hash};
use evident_integrity::{Frontier, Signer};
use evident_model::Severity;
use std::sync::Arc;

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
async fn text_finds_messages() {
    let (_db, s) = store().await;
    testsuite::text_finds_messages(&s).await;
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
async fn journal_reports_retried_critical_events() {
    let (_db, s) = store().await;
    testsuite::journal_reports_retried_critical_events(&s).await;
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
    let secret = testsuite::keys_are_found_by_secret(&s).await;
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
    // The query columns hold U+FFFD for the NUL, and still agree with the body.
    let signer = Arc::new(Signer::generate());
    s.sign_checkpoint(signer.clone(), "test".into())
        .await
        .unwrap();
    let walked = verify(&s, signer.public_key()).await;
    assert_eq!(walked.report.problem, None, "{walked:?}");
    assert_eq!(walked.report.verified, 1);
}

#[tokio::test]
async fn a_query_column_changed_behind_the_body_reads_as_the_event_altered() {
    let (_db, s) = store().await;
    let mut e = testsuite::event("auth.login", 1, Severity::Info).event;
    e.correlation_id = Some("req-1".into());
    s.append(vec![evident_model::EncodedEvent::new(e)].into())
        .await
        .unwrap();
    testsuite::append_in_batches(&s, testsuite::data_mix(10, 5)).await;
    let signer = Arc::new(Signer::generate());
    s.sign_checkpoint(signer.clone(), "test".into())
        .await
        .unwrap();
    assert_eq!(verify(&s, signer.public_key()).await.report.problem, None);
    let client = s.client().await.unwrap();
    client
        .batch_execute("CREATE TABLE saved AS SELECT * FROM events WHERE seq = 1")
        .await
        .unwrap();
    for change in [
        "user_id = 'someone else'",
        "source_ip = NULL",
        "facility = 'plant-9'",
        "severity = 4",
        "priority = 4",
        "category = 'system'",
        "outcome = 'failure'",
        "source = 'elsewhere'",
        "agent_id = 'a-1'",
        "correlation_id = 'req-2'",
        "received_at = received_at - interval '1 second'",
        "id = gen_random_uuid()",
    ] {
        client
            .batch_execute(&format!("UPDATE events SET {change} WHERE seq = 1"))
            .await
            .unwrap();
        let walked = verify(&s, signer.public_key()).await;
        assert_eq!(
            walked.report.problem,
            Some(evident_integrity::verify::Problem::Altered { seq: 1 }),
            "{change}"
        );
        client
            .batch_execute(
                "DELETE FROM events WHERE seq = 1; INSERT INTO events SELECT * FROM saved",
            )
            .await
            .unwrap();
        assert_eq!(verify(&s, signer.public_key()).await.report.problem, None);
    }
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

/// Every stored event with its recorded leaf, in seq order, and the log's start and
/// frontier as the writer left them.
async fn log_state(s: &PgStore) -> (Vec<(i64, String, Option<Vec<u8>>)>, i64, Frontier) {
    let client = s.client().await.unwrap();
    let rows = client
        .query("SELECT seq, body, leaf FROM events ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let head = client
        .query_one("SELECT log_start, log_frontier FROM commit_seq", &[])
        .await
        .unwrap();
    let frontier = Frontier::from_bytes(head.get(1)).unwrap();
    (rows, head.get(0), frontier)
}

/// Walks the log the way the API does, on a blocking thread.
async fn verify(s: &PgStore, public: [u8; 32]) -> crate::LogVerification {
    let s = s.clone();
    tokio::task::spawn_blocking(move || s.verify_log(&public, None, &|_, _| {}))
        .await
        .unwrap()
        .unwrap()
}

async fn prove(s: &PgStore, id: uuid::Uuid) -> Option<Proved> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || s.prove(id))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn appended_events_get_leaves_and_the_frontier_is_their_head() {
    let (_db, s) = store().await;
    let events = testsuite::data_mix(0, 150);
    let stored = testsuite::append_in_batches(&s, events.clone()).await;
    // Duplicates add nothing to the log; the folds' record and a summary event are
    // commits like any other.
    s.append(events[..20].to_vec().into()).await.unwrap();
    let into = stored[0].1.id;
    s.append_folds(vec![(uuid::Uuid::new_v4(), into)])
        .await
        .unwrap();
    let summary = testsuite::event("dedup.summary", 5, Severity::Info);
    s.summarize_folds(into, Box::new(move |_| summary))
        .await
        .unwrap()
        .expect("a summary");
    let (rows, start, frontier) = log_state(&s).await;
    assert_eq!(start, 1, "a new store's log starts at its first event");
    assert_eq!(rows.len(), 152);
    let mut leaves = Vec::new();
    for (i, (seq, body, leaf)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        let leaf = leaf.as_deref().expect("every new event has a leaf");
        assert_eq!(leaf, leaf_hash(body.as_bytes()).as_slice(), "seq {seq}");
        leaves.push(leaf_hash(body.as_bytes()));
    }
    assert_eq!(frontier.size(), 152);
    assert_eq!(frontier.root(), merkle::root(&leaves));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_keep_the_log_in_seq_order_and_verifying() {
    let (_db, s) = store().await;
    let signer = Arc::new(Signer::generate());
    let public = signer.public_key();
    let mut writers = Vec::new();
    for w in 0..6i64 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..15i64 {
                let batch: Vec<_> = (0..4)
                    .map(|i| {
                        testsuite::event("station.operation", w * 1000 + b * 10 + i, Severity::Info)
                    })
                    .collect();
                ids.extend(batch.iter().map(|e| e.event.id));
                s.append(batch.into()).await.unwrap();
            }
            ids
        }));
    }
    // Checkpoints signed while the writers run.
    let signing = {
        let (s, signer) = (s.clone(), signer.clone());
        tokio::spawn(async move {
            let mut signed = 0;
            for _ in 0..20 {
                if s.sign_checkpoint(signer.clone(), "test".into())
                    .await
                    .unwrap()
                    .is_some()
                {
                    signed += 1;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            signed
        })
    };
    let mut ids = Vec::new();
    for w in writers {
        ids.extend(w.await.unwrap());
    }
    signing.await.unwrap();
    let last = s
        .sign_checkpoint(signer.clone(), "test".into())
        .await
        .unwrap()
        .expect("the writes after the last checkpoint");
    assert_eq!(last.checkpoint.size, 360);
    assert!(
        s.sign_checkpoint(signer.clone(), "test".into())
            .await
            .unwrap()
            .is_none(),
        "nothing new, no checkpoint"
    );
    let (rows, _, frontier) = log_state(&s).await;
    let leaves: Vec<_> = rows
        .iter()
        .map(|(_, b, _)| leaf_hash(b.as_bytes()))
        .collect();
    assert_eq!(frontier.root(), merkle::root(&leaves));
    assert_eq!(last.checkpoint.root, frontier.root());

    let walked = verify(&s, public).await;
    assert_eq!(walked.report.problem, None, "{walked:?}");
    assert_eq!(walked.start_seq, 1);
    assert_eq!(walked.report.verified, 360);
    assert_eq!(walked.report.unverified_tail, 0);
    assert_eq!(
        walked.report.checkpoints,
        s.checkpoints().await.unwrap().len()
    );
    // Called on an async worker thread (as the command line does), the walk hands the
    // worker off instead of stalling or panicking.
    let direct = s.verify_log(&public, None, &|_, _| {}).unwrap();
    assert_eq!(direct.report, walked.report);
    // Another key verifies nothing.
    let other = Signer::generate().public_key();
    assert!(verify(&s, other).await.report.problem.is_some());

    for id in [ids[0], ids[77], ids[359]] {
        let Some(Proved::Proof(proof)) = prove(&s, id).await else {
            panic!("a proof for {id}");
        };
        proof.verify(&public).unwrap();
        let stored = s.get(id, None).await.unwrap().unwrap();
        assert_eq!(proof.event, stored.bytes);
        assert_eq!(proof.index, stored.seq as u64 - 1);
    }
    assert_eq!(prove(&s, uuid::Uuid::new_v4()).await, None);
    let newer = testsuite::event("station.operation", 99_999, Severity::Info);
    let id = newer.event.id;
    s.append(vec![newer].into()).await.unwrap();
    assert_eq!(prove(&s, id).await, Some(Proved::NotYetSigned(361)));
}

#[tokio::test]
async fn the_log_of_an_upgraded_store_starts_after_its_last_event() {
    let db = ScratchPostgres::create().await;
    {
        // A store at schema version 7 that has handed out 41 sequence numbers.
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE evident_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            .await
            .unwrap();
        for (version, sql) in super::schema::MIGRATIONS.iter().filter(|(v, _)| *v <= 7) {
            client.batch_execute(sql).await.unwrap();
            client
                .execute(
                    "INSERT INTO evident_schema (version) VALUES ($1)",
                    &[version],
                )
                .await
                .unwrap();
        }
        client
            .batch_execute("UPDATE commit_seq SET last_seq = 41")
            .await
            .unwrap();
    }
    let s = PgStore::connect(&db.url, RetentionPolicy::default())
        .await
        .unwrap();
    let signer = Arc::new(Signer::generate());
    let events: Vec<_> = (0..5)
        .map(|i| testsuite::event("auth.login", i, Severity::Info))
        .collect();
    let out = s.append(events.clone().into()).await.unwrap();
    assert_eq!(out[0], crate::Appended::Stored(42));
    // An event from before the log (its row as an older version wrote it, no leaf).
    let old = uuid::Uuid::new_v4();
    s.client()
        .await
        .unwrap()
        .execute(
            "WITH e AS (INSERT INTO events (seq, id, time, received_at, retention_days, type, category,
                 severity, priority, outcome, data, body)
               SELECT 7, $1, time, received_at, retention_days, type, category, severity,
                 priority, outcome, data, body FROM events WHERE seq = 42 RETURNING time, retention_days)
             INSERT INTO event_ids (id, time, retention_days) SELECT $1, time, retention_days FROM e",
            &[&old],
        )
        .await
        .unwrap();
    s.sign_checkpoint(signer.clone(), "test".into())
        .await
        .unwrap()
        .unwrap();
    let walked = verify(&s, signer.public_key()).await;
    assert_eq!(walked.report.problem, None, "{walked:?}");
    assert_eq!((walked.start_seq, walked.report.verified), (42, 5));
    assert_eq!(prove(&s, old).await, Some(Proved::OutsideLog(7)));
    let Some(Proved::Proof(proof)) = prove(&s, events[3].event.id).await else {
        panic!("a proof");
    };
    assert_eq!(proof.index, 3);
    proof.verify(&signer.public_key()).unwrap();
}

#[tokio::test]
async fn the_walk_reads_events_through_the_seq_index() {
    let (_db, s) = store().await;
    testsuite::append_in_batches(&s, testsuite::data_mix(0, 400)).await;
    let mut client = s.client().await.unwrap();
    client.batch_execute("ANALYZE events").await.unwrap();
    let tx = super::integrity::snapshot(&mut client).await.unwrap();
    let plan: Vec<String> = tx
        .query(&format!("EXPLAIN {}", super::integrity::WALK), &[&1i64])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Index Scan"), "{plan}");
    assert!(!plan.contains("Sort  ("), "no sort of the table: {plan}");
}

/// Retention drops partitions at the start and in the middle of the log and trims the
/// boundary month; the log still verifies (from the checkpoint at its new start, and
/// through the kept hashes), held events still get proofs, and tampering with what stands
/// in for the removed events is caught.
#[tokio::test]
async fn the_log_verifies_and_proves_after_retention_on_both_stores() {
    let (_db, s) = store().await;
    testsuite::the_log_verifies_and_proves_after_retention(&s).await;
}

#[tokio::test]
async fn the_log_verifies_and_proves_after_partitions_are_dropped() {
    use evident_integrity::verify::Problem;
    use time::macros::datetime;
    let (_db, s) = store().await;
    let signer = Arc::new(Signer::generate());
    let public = signer.public_key();
    let at = |ty: &str, time: time::OffsetDateTime| {
        let mut e = testsuite::event(ty, 0, Severity::Info).event;
        e.time = time;
        evident_model::EncodedEvent::new(e)
    };
    let (january, february) = (
        datetime!(2024-01-10 00:00 UTC),
        datetime!(2024-02-10 00:00 UTC),
    );
    let (early_march, late_march) = (
        datetime!(2024-03-02 00:00 UTC),
        datetime!(2024-03-20 00:00 UTC),
    );
    // Debug events are kept 30 days, logins 7 years. As of 2024-04-10, January's and
    // February's debug partitions are dropped whole, and March's is trimmed to the events
    // from March 11 on.
    let rounds: Vec<Vec<_>> = vec![
        (0..10).map(|_| at("debug.trace", january)).collect(),
        (0..10)
            .map(|i| {
                if i < 6 {
                    at("debug.trace", february)
                } else {
                    at("auth.login", january)
                }
            })
            .collect(),
        (0..10)
            .map(|i| at(["auth.login", "debug.trace"][i % 2], january))
            .collect(),
        (0..10)
            .map(|i| at(["auth.login", "debug.trace"][i % 2], early_march))
            .collect(),
        (0..10)
            .map(|i| at(["auth.login", "debug.trace"][i % 2], late_march))
            .collect(),
    ];
    let mut held = Vec::new();
    for batch in rounds {
        held.extend(
            batch
                .iter()
                .filter(|e| e.event.event_type == "auth.login" || e.event.time == late_march)
                .map(|e| e.event.id),
        );
        s.append(batch.into()).await.unwrap();
        s.sign_checkpoint(signer.clone(), "test".into())
            .await
            .unwrap()
            .expect("a checkpoint per round");
    }
    let report = s.maintain(datetime!(2024-04-10 00:00 UTC)).await.unwrap();
    assert_eq!(report.removed, 26, "{report:?}");
    assert_eq!(
        report.dropped_partitions,
        vec!["events_r30_202401".to_string(), "events_r30_202402".into()]
    );

    // The removed run at the start (seq 1..=16) folds up to the checkpoint at 10, the
    // largest it covers; the other removed events keep their hashes.
    let client = s.client().await.unwrap();
    let state = |client: deadpool_postgres::Object| async move {
        let row = client
            .query_one(
                "SELECT log_base, (SELECT array_agg(seq ORDER BY seq) FROM pruned_leaves)
                 FROM commit_seq",
                &[],
            )
            .await
            .unwrap();
        let base: Option<Vec<u8>> = row.get(0);
        let kept: Vec<i64> = row.get(1);
        (
            base.map(|b| Frontier::from_bytes(&b).unwrap()),
            kept,
            client,
        )
    };
    let (base, kept, client) = state(client).await;
    assert_eq!(base.expect("a base").size(), 10);
    let mut removed: Vec<i64> = (11..=16).collect();
    removed.extend((22..=30).step_by(2));
    removed.extend((32..=40).step_by(2));
    assert_eq!(kept, removed);

    let walked = verify(&s, public).await;
    assert_eq!(walked.report.problem, None, "{walked:?}");
    assert_eq!(walked.start_seq, 1);
    assert_eq!(
        (
            walked.report.verified,
            walked.report.pruned,
            walked.report.checkpoints,
            walked.report.unverified_tail
        ),
        (50, 26, 5, 0),
        "{walked:?}"
    );
    assert_eq!(held.len(), 24);
    for id in &held {
        let Some(Proved::Proof(proof)) = prove(&s, *id).await else {
            panic!("a proof for held event {id}");
        };
        proof.verify(&public).unwrap();
        let stored = s.get(*id, None).await.unwrap().unwrap();
        assert_eq!(proof.event, stored.bytes);
        assert_eq!(proof.index, stored.seq as u64 - 1);
    }

    // A pass that removes nothing changes nothing either.
    let again = s.maintain(datetime!(2024-04-10 00:00 UTC)).await.unwrap();
    assert_eq!(again.removed, 0);
    let (base_again, kept_again, client) = state(client).await;
    assert_eq!((base_again.map(|b| b.size()), kept_again), (Some(10), kept));

    // A row below the walk's start (inside the folded base) reads as inserted.
    client
        .batch_execute(
            "CREATE TEMP TABLE stray AS SELECT * FROM events WHERE seq = 17;
             UPDATE stray SET seq = 3;
             INSERT INTO events SELECT * FROM stray;",
        )
        .await
        .unwrap();
    assert_eq!(
        verify(&s, public).await.report.problem,
        Some(Problem::OutOfOrder {
            seq: 3,
            expected: 11
        })
    );
    client
        .batch_execute("DELETE FROM events WHERE seq = 3")
        .await
        .unwrap();
    assert_eq!(verify(&s, public).await.report.problem, None);

    // A changed kept hash breaks the head of the checkpoint range it is in.
    client
        .batch_execute(
            "CREATE TEMP TABLE saved_leaf AS SELECT * FROM pruned_leaves WHERE seq = 11;
             UPDATE pruned_leaves SET leaf = decode(repeat('00', 32), 'hex') WHERE seq = 11;",
        )
        .await
        .unwrap();
    assert_eq!(
        verify(&s, public).await.report.problem,
        Some(Problem::HeadMismatch {
            from_seq: 11,
            to_seq: 20
        })
    );
    client
        .batch_execute(
            "UPDATE pruned_leaves SET leaf = (SELECT leaf FROM saved_leaf) WHERE seq = 11",
        )
        .await
        .unwrap();
    assert_eq!(verify(&s, public).await.report.problem, None);

    // A changed base matches no signed checkpoint of its size.
    client
        .batch_execute(
            "UPDATE commit_seq SET log_base = substring(log_base from 1 for 8)
                 || decode(repeat('00', length(log_base) - 8), 'hex')",
        )
        .await
        .unwrap();
    assert_eq!(
        verify(&s, public).await.report.problem,
        Some(Problem::BaseMismatch { size: 10 })
    );
}

/// More removed events than one fetch reads, at the log's start (folded) and in its
/// middle (kept): the fold and the walk read them in chunks.
#[tokio::test]
async fn kept_hashes_are_read_past_one_fetch() {
    use time::macros::datetime;
    let (_db, s) = store().await;
    let signer = Arc::new(Signer::generate());
    let public = signer.public_key();
    let at = |ty: &str| {
        let mut e = testsuite::event(ty, 0, Severity::Info).event;
        e.time = datetime!(2024-01-10 00:00 UTC);
        evident_model::EncodedEvent::new(e)
    };
    let start: Vec<_> = (0..5000).map(|_| at("debug.trace")).collect();
    s.append(start.into()).await.unwrap();
    s.sign_checkpoint(signer.clone(), "test".into())
        .await
        .unwrap();
    let middle: Vec<_> = (0..10_000)
        .map(|i| at(["auth.login", "debug.trace"][i % 2]))
        .collect();
    let held: Vec<_> = middle.iter().step_by(2).map(|e| e.event.id).collect();
    for chunk in middle.chunks(2500) {
        s.append(chunk.to_vec().into()).await.unwrap();
    }
    s.sign_checkpoint(signer.clone(), "test".into())
        .await
        .unwrap();
    let report = s.maintain(datetime!(2024-04-10 00:00 UTC)).await.unwrap();
    assert_eq!(report.removed, 10_000);
    let row = s
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT log_base, (SELECT COUNT(*) FROM pruned_leaves) FROM commit_seq",
            &[],
        )
        .await
        .unwrap();
    let base = Frontier::from_bytes(row.get::<_, Option<&[u8]>>(0).expect("a base")).unwrap();
    assert_eq!((base.size(), row.get::<_, i64>(1)), (5000, 5000));
    let walked = verify(&s, public).await;
    assert_eq!(walked.report.problem, None, "{walked:?}");
    assert_eq!(
        (walked.report.verified, walked.report.pruned),
        (15_000, 10_000)
    );
    for id in [held[0], held[2048], held[4999]] {
        let Some(Proved::Proof(proof)) = prove(&s, id).await else {
            panic!("a proof for {id}");
        };
        proof.verify(&public).unwrap();
    }
}

/// Edits of the side tables behind the store's back, each on a database of its own:
/// every one is named by the walk, as on the embedded store.
#[tokio::test(flavor = "multi_thread")]
async fn side_table_edits_are_caught_and_named() {
    let edits: [(&str, &str, &str); 5] = [
        (
            "every fold deleted",
            "DELETE FROM folds",
            "folds table has no such row (removed)",
        ),
        (
            "a fold forged",
            "INSERT INTO folds (id, into_id, folded_at) SELECT gen_random_uuid(), into_id, folded_at FROM folds LIMIT 1",
            "no record in the log says so (inserted)",
        ),
        (
            "the finding marked resolved",
            "UPDATE findings SET status = 'resolved', open_key = NULL",
            "its status is resolved, but the log records it acknowledged",
        ),
        (
            "the finding's evidence deleted",
            "DELETE FROM finding_events",
            "finding_events has no such link (removed)",
        ),
        (
            "the finding deleted",
            "DELETE FROM finding_events; DELETE FROM findings",
            "the findings table has no such finding (removed)",
        ),
    ];
    let public = Signer::generate().public_key();
    for (what, edit, named) in edits {
        let (db, s) = store().await;
        testsuite::side_tables(&s).await;
        assert_eq!(
            verify(&s, public).await.beside,
            Vec::<String>::new(),
            "{what}: clean before"
        );
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(edit).await.unwrap();
        let beside = verify(&s, public).await.beside;
        assert!(
            beside.iter().any(|p| p.contains(named)),
            "{what}: expected a problem naming {named:?}, got {beside:?}"
        );
    }
}

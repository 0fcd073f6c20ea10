//! The pipeline against the real embedded store.

use evident_model::{Priority, Severity};
use evident_pipeline::{Ack, EventOutcome, Pipeline, PipelineConfig};
use evident_store::roles::*;
use evident_store::testsuite::event;
use evident_store::{EventQuery, SqliteStore};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_commits_and_each_gets_its_own_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
    let (pipeline, task) = Pipeline::start(store.clone(), PipelineConfig::default());
    let mut joins = Vec::new();
    for client in 0..50 {
        let pipeline = pipeline.clone();
        joins.push(tokio::spawn(async move {
            let sev = Severity::ALL[client % 5];
            let events: Vec<_> = (0..client % 5 + 1)
                .map(|i| event("user.login", (client * 10 + i) as i64, sev))
                .collect();
            let ids: Vec<_> = events.iter().map(|e| e.event.id).collect();
            let out = pipeline.submit(events, Ack::Commit).await.unwrap();
            (ids, out)
        }));
    }
    let mut all_ids = Vec::new();
    for j in joins {
        let (ids, out) = j.await.unwrap();
        assert_eq!(ids.len(), out.len());
        for (id, o) in ids.iter().zip(out) {
            let stored = store
                .get(*id, None)
                .await
                .unwrap()
                .expect("acknowledged event is found");
            match o {
                EventOutcome::Stored(seq) => assert_eq!(
                    stored.seq, seq,
                    "each request gets its own events' outcomes"
                ),
                // Critical events are answered from the journal before the writer moves them.
                EventOutcome::Journaled => {}
                other => panic!("fresh id not stored: {other:?}"),
            }
            all_ids.push(*id);
        }
    }
    pipeline.close();
    task.await.unwrap();
    let mut all_seqs = Vec::new();
    for id in &all_ids {
        all_seqs.push(
            store
                .get(*id, None)
                .await
                .unwrap()
                .expect("stored after close")
                .seq,
        );
    }
    all_seqs.sort_unstable();
    assert_eq!(
        all_seqs,
        (1..=all_seqs.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    let page = store
        .query(EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), all_seqs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_is_flushed_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
    let (pipeline, task) = Pipeline::start(store.clone(), PipelineConfig::default());
    let events: Vec<_> = (0..2000).map(|i| event("a.b", i, Severity::Low)).collect();
    let out = pipeline.submit(events, Ack::Queued).await.unwrap();
    assert!(out.iter().all(|o| *o == EventOutcome::Queued));
    pipeline.close();
    assert!(
        pipeline
            .submit(vec![event("a.b", 1, Severity::Low)], Ack::Commit)
            .await
            .is_err(),
        "closed to new work"
    );
    task.await.unwrap();
    let page = store
        .query(EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1000, "first page full");
    assert_eq!(
        pipeline.stats().processed,
        2000,
        "everything queued was committed before the committer ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_dead_lettered_and_its_batch_mates_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
    rusqlite::Connection::open(store.db_path())
        .unwrap()
        .execute_batch("CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.type = 'test.poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END;")
        .unwrap();
    let (pipeline, task) = Pipeline::start(store.clone(), PipelineConfig::default());
    let mut events: Vec<_> = (0..9)
        .map(|i| event("test.fine", i, Severity::Medium))
        .collect();
    events.insert(4, event("test.poison", 4, Severity::Medium));
    let out = pipeline.submit(events, Ack::Commit).await.unwrap();
    assert_eq!(out[4], EventOutcome::DeadLettered);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, EventOutcome::Stored(_)))
            .count(),
        9
    );
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("poisoned"), "{}", dead[0].error);
    pipeline.close();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_refuses_low_priorities_and_keeps_room_for_critical() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
    let config = PipelineConfig {
        capacity_events: 100,
        ..PipelineConfig::default()
    };
    let (pipeline, task) = Pipeline::start(store.clone(), config);
    // Fire-and-forget so the queue fills faster than it drains.
    let info: Vec<_> = (0..200)
        .map(|i| event("a.info", i, Severity::Info))
        .collect();
    let out = pipeline.submit(info, Ack::Queued).await.unwrap();
    let refused = out
        .iter()
        .filter(|o| **o == EventOutcome::Overloaded)
        .count();
    assert!(
        refused >= 140,
        "info may fill at most 60 of 100 slots; refused {refused}"
    );
    let critical: Vec<_> = (0..30)
        .map(|i| event("a.crit", i, Severity::Critical))
        .collect();
    assert!(
        critical
            .iter()
            .all(|e| e.event.priority == Priority::Critical)
    );
    let out = pipeline.submit(critical, Ack::Commit).await.unwrap();
    assert!(
        out.iter().all(|o| matches!(o, EventOutcome::Journaled)),
        "critical events keep reserved room, and are answered from the journal: {out:?}"
    );
    pipeline.close();
    task.await.unwrap();
    let stored = store
        .query(EventQuery {
            event_type: Some(evident_store::TypeFilter::Exact("a.crit".into())),
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        stored.events.len(),
        30,
        "journaled critical events end up in the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_commits_what_is_queued_and_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
    let (pipeline, task) = Pipeline::start(store.clone(), PipelineConfig::default());
    let events: Vec<_> = (0..20)
        .map(|i| event("user.login", i, Severity::Info))
        .collect();
    let ids: Vec<_> = events.iter().map(|e| e.event.id).collect();
    let out = pipeline.submit(events, Ack::Queued).await.unwrap();
    assert!(out.iter().all(|o| matches!(o, EventOutcome::Queued)));
    let second = pipeline.clone();
    drop(pipeline);
    assert!(
        !task.is_finished(),
        "a remaining handle keeps the pipeline open"
    );
    drop(second);
    tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("the writer ends once every handle is gone")
        .unwrap();
    for id in ids {
        assert!(
            store.get(id, None).await.unwrap().is_some(),
            "queued event committed before the writer ended"
        );
    }
}

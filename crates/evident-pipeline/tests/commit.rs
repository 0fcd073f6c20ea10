//! The commit stage against the real embedded store.

use evident_model::Severity;
use evident_pipeline::{CommitConfig, spawn_committer};
use evident_store::testsuite::event;
use evident_store::{Appended, EventQuery, EventStore, SqliteStore};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_commits_and_each_gets_its_own_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
    let (handle, task) = spawn_committer(store.clone(), CommitConfig::default());
    let mut joins = Vec::new();
    for client in 0..50 {
        let handle = handle.clone();
        joins.push(tokio::spawn(async move {
            let events: Vec<_> = (0..client % 5 + 1)
                .map(|i| event("user.login", i, Severity::Info))
                .collect();
            let ids: Vec<_> = events.iter().map(|e| e.event.id).collect();
            let out = handle.commit(events).await.unwrap();
            (ids, out)
        }));
    }
    let mut all_seqs = Vec::new();
    for j in joins {
        let (ids, out) = j.await.unwrap();
        assert_eq!(ids.len(), out.len());
        for (id, o) in ids.iter().zip(out) {
            let Appended::Stored(seq) = o else {
                panic!("fresh id reported duplicate")
            };
            let stored = store
                .get(*id, None)
                .await
                .unwrap()
                .expect("acknowledged event is stored");
            assert_eq!(
                stored.seq, seq,
                "each request gets its own events' outcomes"
            );
            all_seqs.push(seq);
        }
    }
    all_seqs.sort_unstable();
    assert_eq!(
        all_seqs,
        (1..=all_seqs.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    drop(handle);
    task.await.unwrap();
    let page = store
        .query(EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), all_seqs.len());
}

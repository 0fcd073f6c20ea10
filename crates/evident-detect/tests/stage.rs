//! The detection stage over a real embedded store and pipeline: findings from committed
//! events, no event missed or counted twice across a restart that replays.

use evident_detect::pack::DEFAULT_PACK;
use evident_detect::{Detector, StageConfig, stage};
use evident_model::{Actor, Category, EncodedEvent, Event, Outcome, Priority, Severity};
use evident_pipeline::{Ack, Pipeline, PipelineConfig};
use evident_store::{FindingQuery, FindingStore, SqliteStore};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::macros::datetime;

const PER_USER: &str = "5d0e8a52-3c1b-4f7e-9a64-2b7c1d9e0a11";

fn failure(user: &str, second: i64) -> EncodedEvent {
    let time = datetime!(2026-03-01 10:00:00 UTC) + time::Duration::seconds(second);
    EncodedEvent::new(Event {
        id: uuid::Uuid::new_v4(),
        time,
        received_at: time,
        event_type: "auth.login.failure".into(),
        category: Category::for_type("auth.login.failure"),
        severity: Severity::Medium,
        priority: Priority::from(Severity::Medium),
        outcome: Outcome::Failure,
        source: None,
        agent_id: None,
        actor: Actor {
            user_id: Some(user.into()),
            ip: Some(format!("10.0.0.{}", second % 200)),
            ..Actor::default()
        },
        target: Default::default(),
        facility: Some("plant-1".into()),
        correlation_id: None,
        data: Default::default(),
        context: Default::default(),
        tags: vec![],
        compliance: vec![],
        sealed: None,
        service_record: false,
    })
}

fn pack() -> Detector {
    Detector::from_sources(DEFAULT_PACK).0
}

/// Never saves state on its own: only at shutdown.
fn config() -> StageConfig {
    StageConfig {
        save_state_every: Duration::from_secs(3600),
        poll: Duration::from_millis(50),
        ..StageConfig::default()
    }
}

/// Findings per group key of the per-user brute-force rule, with their counts.
async fn per_user(store: &SqliteStore) -> Vec<(String, u64)> {
    let page = store
        .findings(FindingQuery {
            rule_id: Some(PER_USER.into()),
            limit: 1000,
            ..FindingQuery::default()
        })
        .await
        .unwrap();
    let mut found: Vec<_> = page
        .findings
        .into_iter()
        .map(|f| (f.group_key, f.count))
        .collect();
    found.sort();
    found
}

async fn wait_for(store: &SqliteStore, want: &[(&str, u64)]) {
    let want: Vec<(String, u64)> = want.iter().map(|(g, c)| (g.to_string(), *c)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = per_user(store).await;
        if found == want {
            return;
        }
        assert!(Instant::now() < deadline, "wanted {want:?}, have {found:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_replays_from_saved_state_without_recording_twice() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
        let (pipeline, commit) = Pipeline::start(store.clone(), PipelineConfig::default());
        let (handle, detection) = stage::start(
            store.clone(),
            store.clone(),
            pack(),
            pipeline.commits(),
            config(),
        );
        let mut events: Vec<_> = (0..6).map(|i| failure("u1", i)).collect();
        events.extend((0..3).map(|i| failure("u2", i)));
        pipeline.submit(events, Ack::Commit).await.unwrap();
        wait_for(&store, &[("actor.user_id=u1", 2)]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle
            .stats()
            .seq
            .load(std::sync::atomic::Ordering::Relaxed)
            < 9
        {
            assert!(Instant::now() < deadline, "detection never reached seq 9");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            handle
                .stats()
                .events
                .load(std::sync::atomic::Ordering::Relaxed),
            9
        );
        pipeline.close();
        commit.await.unwrap();
        detection.await.unwrap();
        // As after a crash before any save: state from the start, findings recorded.
        store
            .save_detection_state(0, pack().save_state())
            .await
            .unwrap();
    }
    // The pipeline's timers let go of the store shortly after it closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let store = loop {
        match SqliteStore::open_exclusive(dir.path()) {
            Ok(store) => break Arc::new(store),
            Err(e) if Instant::now() > deadline => panic!("store still held: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let (pipeline, commit) = Pipeline::start(store.clone(), PipelineConfig::default());
    let (_handle, detection) = stage::start(
        store.clone(),
        store.clone(),
        pack(),
        pipeline.commits(),
        config(),
    );
    // u2's three failures before the restart count: two more make five.
    pipeline
        .submit(vec![failure("u2", 3), failure("u2", 4)], Ack::Commit)
        .await
        .unwrap();
    wait_for(&store, &[("actor.user_id=u1", 2), ("actor.user_id=u2", 1)]).await;
    // And u1's replayed events were not recorded again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        per_user(&store).await,
        vec![
            ("actor.user_id=u1".to_string(), 2),
            ("actor.user_id=u2".to_string(), 1)
        ]
    );
    pipeline.close();
    commit.await.unwrap();
    detection.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outside_the_window_or_spread_over_groups_do_not_fire() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
    let (pipeline, commit) = Pipeline::start(store.clone(), PipelineConfig::default());
    let (_handle, detection) = stage::start(
        store.clone(),
        store.clone(),
        pack(),
        pipeline.commits(),
        config(),
    );
    // Five failures 90 s apart: 6 minutes from first to last, never 5 within 5 minutes.
    let spread: Vec<_> = (0..5).map(|i| failure("slow", i * 90)).collect();
    // Five failures within a minute, spread over five users.
    let users: Vec<_> = (0..5).map(|i| failure(&format!("user{i}"), i)).collect();
    // Marker: five quick failures that must fire, committed last.
    let marker: Vec<_> = (0..5).map(|i| failure("marker", 100 + i)).collect();
    for batch in [spread, users, marker] {
        pipeline.submit(batch, Ack::Commit).await.unwrap();
    }
    wait_for(&store, &[("actor.user_id=marker", 1)]).await;
    pipeline.close();
    commit.await.unwrap();
    detection.await.unwrap();
}

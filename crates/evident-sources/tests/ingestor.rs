//! The ingestor against the real pipeline and embedded store: one way in, one report.

use bytes::Bytes;
use evident_pipeline::{Ack, EventOutcome, Pipeline, PipelineConfig};
use evident_privacy::{MasterKey, PersonalField, Privacy, SubjectKeys};
use evident_sources::http::{Compression, HttpBody, answer};
use evident_sources::ingestor::Sealing;
use evident_sources::{Context, Ingestor, IngestorConfig, Transform, Verdict};
use evident_store::SqliteStore;
use evident_store::roles::*;
use std::sync::Arc;

struct Setup {
    ingestor: Ingestor,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

fn setup(sealing: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_exclusive(dir.path()).unwrap());
    let (pipeline, _task) = Pipeline::start(store.clone(), PipelineConfig::default());
    let mut transforms: Vec<Arc<dyn Transform>> = Vec::new();
    if sealing {
        let master = MasterKey::generate();
        let keys = SubjectKeys::open(&dir.path().join("keys.db"), &master).unwrap();
        let privacy = Arc::new(Privacy::new(&master, keys, PersonalField::defaults()));
        transforms.push(Arc::new(Sealing(privacy)));
    }
    Setup {
        ingestor: Ingestor::new(Arc::new(pipeline), transforms, IngestorConfig::default()),
        store,
        _dir: dir,
    }
}

fn ndjson(text: &'static str) -> HttpBody {
    HttpBody {
        bytes: Bytes::from_static(text.as_bytes()),
        content_type: Some("application/x-ndjson".into()),
        compression: Compression::None,
    }
}

const COMMIT: Context = Context {
    ack: Ack::Commit,
    key: None,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_events_are_committed_and_invalid_ones_named_in_one_report() {
    let s = setup(false);
    let body = ndjson(
        "{\"type\":\"auth.login.failure\",\"actor\":{\"user_id\":\"u1\"}}\n\
         {\"type\":\"Not A Type\"}\n\
         {\"type\":\"station.operation\"}\n",
    );
    let report = s.ingestor.ingest(body, COMMIT).await.unwrap();
    assert_eq!(report.total, 3);
    assert_eq!(report.verdict(), Verdict::Accepted);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].index, 1);
    assert_eq!(report.rejected[0].line, Some(2));
    let positions: Vec<usize> = report.taken.iter().map(|t| t.index).collect();
    assert_eq!(positions, vec![0, 2]);
    for taken in &report.taken {
        let EventOutcome::Stored(seq) = taken.outcome else {
            panic!("{:?}", taken.outcome);
        };
        let stored = s.store.get(taken.id, None).await.unwrap().unwrap();
        assert_eq!(stored.seq, seq);
    }
    let http = answer(report);
    assert_eq!(http.status, 202);
    assert_eq!(http.body["stored"], 2);
    assert_eq!(http.body["rejected"], 1);
    assert_eq!(http.body["errors"][0]["field"], "type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_fields_are_sealed_before_the_sink_sees_them() {
    let s = setup(true);
    let report = s
        .ingestor
        .ingest(
            ndjson("{\"type\":\"auth.login.failure\",\"actor\":{\"user_id\":\"alice\",\"ip\":\"10.0.0.9\"}}\n"),
            COMMIT,
        )
        .await
        .unwrap();
    let id = report.taken[0].id;
    let stored = s.store.get(id, None).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&stored.bytes).into_owned();
    assert!(!text.contains("alice"), "stored in the clear: {text}");
    assert!(!text.contains("10.0.0.9"), "stored in the clear: {text}");
    assert!(text.contains("\"sealed\""), "{text}");
    // Events the service makes go the same way.
    let mut event =
        evident_store::testsuite::event("user.login", 1, evident_model::Severity::Low).event;
    event.actor.user_id = Some("bob".into());
    let report = s.ingestor.ingest_events(vec![event], COMMIT).await.unwrap();
    let stored = s
        .store
        .get(report.taken[0].id, None)
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&stored.bytes).contains("bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_with_no_valid_event_and_a_broken_body_are_told_apart() {
    let s = setup(false);
    let report = s
        .ingestor
        .ingest(
            ndjson("{\"type\":\"a.b\",\"severity\":\"banana\"}\n"),
            COMMIT,
        )
        .await
        .unwrap();
    assert_eq!(report.verdict(), Verdict::NoValidEvent);
    assert_eq!(answer(report).status, 400);
    let broken = s.ingestor.ingest(
        HttpBody {
            bytes: Bytes::from_static(b"not json"),
            content_type: Some("application/json".into()),
            compression: Compression::None,
        },
        COMMIT,
    );
    let error = broken.await.unwrap_err();
    assert!(error.to_string().contains("not valid JSON"), "{error}");
}

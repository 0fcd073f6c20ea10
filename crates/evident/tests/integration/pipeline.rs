//! The admission pipeline through the real server: priorities, fire-and-forget,
//! overload, dead letters, configuration, statistics and metrics.

use super::common::{BIN, Server};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

/// `n` distinct events (no two alike, across calls too: deduplication must not fold them).
fn events(n: usize, event_type: &str, severity: &str) -> String {
    let batch = uuid::Uuid::new_v4();
    (0..n)
        .map(|i| format!("{{\"type\":\"{event_type}\",\"severity\":\"{severity}\",\"data\":{{\"n\":{i},\"batch\":\"{batch}\",\"pad\":\"{}\"}}}}\n", "x".repeat(100)))
        .collect()
}

async fn lane(server: &Server, priority: &str) -> u64 {
    let stats = server.get_ok("/api/v1/stats/pipeline").await;
    stats["queue_size"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["priority"] == priority)
        .unwrap()["events"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_event_is_committed_ahead_of_queued_info_events() {
    // Small commits make the queued info events take seconds to drain, however fast
    // or slow this machine parses the requests that queue them.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    std::fs::write(&config, "version: 1\npipeline:\n  max_commit_events: 50\n").unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    // Queue 40,000 info events without waiting for their commit.
    for _ in 0..20 {
        let (status, body) = server
            .post_queued(events(2000, "station.operation", "info"))
            .await;
        assert_eq!(
            (status.as_u16(), body["queued"].as_u64()),
            (202, Some(2000)),
            "{body}"
        );
    }
    let started = Instant::now();
    let (status, body) = server
        .post(
            Some(&server.key),
            Some("application/json"),
            r#"{"type":"safety.override","severity":"critical"}"#,
        )
        .await;
    let critical_latency = started.elapsed();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["stored"], 1, "{body}");
    let info_still_queued = lane(&server, "info").await;
    assert!(
        info_still_queued > 0,
        "the critical event was committed while info events were still waiting ({critical_latency:?})"
    );
    let stats = server.get_ok("/api/v1/stats/pipeline").await;
    let critical = stats["processing_time"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["priority"] == "critical")
        .unwrap()
        .clone();
    assert_eq!(critical["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_none_answers_on_admission_and_everything_is_committed() {
    let (_dir, server) = Server::start_fresh();
    let (status, body) = server
        .post(
            Some(&server.key),
            Some("application/x-ndjson"),
            events(1500, "a.b", "low"),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["stored"].as_u64()),
        (202, Some(1500)),
        "{body}"
    );
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/events?ack=none", server.url))
        .bearer_auth(&server.key)
        .header("content-type", "application/x-ndjson")
        .body(events(1500, "a.d", "low"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["accepted"].as_u64(), body["queued"].as_u64()),
        (Some(1500), Some(1500)),
        "{body}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = server.get_ok("/api/v1/stats/pipeline").await;
        if stats["processed"] == 3000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fire-and-forget events never committed: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!("{}/api/v1/events?ack=later", server.url))
        .bearer_auth(&server.key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_refuses_lower_priorities_first_with_429_and_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    std::fs::write(
        &config,
        "version: 1\npipeline:\n  capacity_events: 3000\n  refusals:\n    window_secs: 1\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let post = |body: String, ack_none: bool| {
        let url = format!(
            "{}/api/v1/events{}",
            server.url,
            if ack_none { "?ack=none" } else { "" }
        );
        let req = http
            .post(url)
            .bearer_auth(&server.key)
            .header("content-type", "application/x-ndjson")
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                r.status().as_u16(),
                retry_after,
                r.json::<Value>().await.unwrap(),
            )
        }
    };
    // Push info events as fast as possible without waiting for commits: 50 requests of 2000.
    let mut saw_429 = None;
    for _ in 0..50 {
        let (status, retry_after, body) =
            post(events(2000, "station.operation", "info"), true).await;
        if status == 429 {
            saw_429 = Some((retry_after, body));
            break;
        }
    }
    let (retry_after, body) = saw_429.expect("info flood never got 429");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(
        body["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("overloaded"),
        "{body}"
    );
    assert_eq!(
        body["accepted"].as_u64().unwrap() + body["rejected"].as_u64().unwrap(),
        2000
    );
    // While info is refused, critical events still get in (reserved room).
    let (status, _, body) = post(events(50, "safety.override", "critical"), false).await;
    assert_eq!(status, 202, "critical refused while info was full: {body}");
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
        })
        .unwrap();
    assert!(
        rss_kib < 256 * 1024,
        "server RSS {rss_kib} KiB with a 3000-event queue"
    );
    let stats = server.get_ok("/api/v1/stats/pipeline").await;
    assert!(stats["rejected"]["overloaded"].as_u64().unwrap() > 0);
    refusals_become_audit_evidence(&server, body["rejected"].as_u64().unwrap()).await;
}

/// The 429s leave a `system.ingest.refused` record behind: counts by reason, priority
/// and key, marked as the service's own.
async fn refusals_become_audit_evidence(server: &Server, at_least: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let record = loop {
        let page = server
            .get_ok("/api/v1/events?type=system.ingest.refused&limit=10")
            .await;
        if let Some(first) = page["events"].as_array().and_then(|e| e.first()) {
            break first.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no system.ingest.refused record"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(record["source"], "evident", "{record}");
    assert_eq!(record["service_record"], true, "{record}");
    assert!(
        record["data"]["refused"].as_u64().unwrap() >= at_least,
        "{record}"
    );
    let groups = record["data"]["groups"].as_array().unwrap();
    assert!(
        groups.iter().any(|g| g["reason"] == "overloaded"
            && g["priority"] == "info"
            && g["key"].is_i64()
            && g["count"].as_u64() >= Some(1)),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_never_acknowledges_a_fold_into_an_event_it_did_not_keep() {
    let dir = tempfile::tempdir().unwrap();
    // Commits of 500 events (the default takes the whole request in one): about 1 MiB of
    // events, the first commit fits the 1 MiB store, the next does not, and the room
    // left still takes the small fold records of a retry.
    let config = dir.path().join("small-commits.yaml");
    std::fs::write(
        &config,
        "version: 1\npipeline:\n  max_commit_events: 500\n  priorities:\n    info: {max_batch: 500}\n    low: {max_batch: 500}\n    medium: {max_batch: 500}\n    high: {max_batch: 500}\n",
    )
    .unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--max-db-size-mb",
            "1",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let batch = uuid::Uuid::new_v4();
    let body: String = (0..1500)
        .map(|i| format!("{{\"type\":\"quality.check\",\"data\":{{\"n\":{i},\"batch\":\"{batch}\",\"pad\":\"{}\"}}}}\n", "x".repeat(550)))
        .collect();
    let mut folds_seen = 0;
    // The same body (no ids: the server assigns new ones each time) sent three times.
    for attempt in 0..3 {
        let (status, answer) = server
            .post(
                Some(&server.key),
                Some("application/x-ndjson"),
                body.clone(),
            )
            .await;
        assert!(
            status == 202 || status == 503,
            "attempt {attempt}: {status} {answer}"
        );
        for folded in answer["folded"].as_array().into_iter().flatten() {
            folds_seen += 1;
            let into = folded["into"].as_str().unwrap();
            let (found, event) = server
                .get(Some(&server.key), &format!("/api/v1/events/{into}"))
                .await;
            assert_eq!(
                found, 200,
                "attempt {attempt}: folded into {into}, which is not stored: {event}"
            );
        }
        if status == 202 {
            for id in answer["ids"].as_array().unwrap() {
                let id = id.as_str().unwrap();
                let (found, event) = server
                    .get(Some(&server.key), &format!("/api/v1/events/{id}"))
                    .await;
                assert_eq!(
                    found, 200,
                    "attempt {attempt}: acknowledged {id} is not found: {event}"
                );
            }
        }
    }
    assert!(
        folds_seen > 0,
        "the retries folded nothing: the test did not reach its case"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folded_id_answers_with_the_event_it_was_folded_into() {
    let (_dir, server) = Server::start_fresh();
    let storm = "{\"type\":\"equipment.status\",\"data\":{\"status\":\"idle\"}}\n".repeat(3);
    let (status, body) = server
        .post(Some(&server.key), Some("application/x-ndjson"), storm)
        .await;
    assert_eq!(status, 202, "{body}");
    let folded = &body["folded"][0];
    let (id, into) = (
        folded["id"].as_str().unwrap(),
        folded["into"].as_str().unwrap(),
    );
    let (status, event) = server
        .get(Some(&server.key), &format!("/api/v1/events/{id}"))
        .await;
    assert_eq!(status, 200, "an acknowledged id answers: {event}");
    assert_eq!(event["id"], into, "{event}");
    assert_eq!(event["folded"]["id"], id, "{event}");
    assert_eq!(event["folded"]["into"], into, "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_critical_event_is_counted_as_a_duplicate() {
    let (_dir, server) = Server::start_fresh();
    let event =
        json!({"id": uuid::Uuid::new_v4(), "type": "safety.override", "severity": "critical"});
    let (status, first) = server.post_json(&event).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(
        (first["stored"].as_u64(), first["duplicates"].as_u64()),
        (Some(1), Some(0)),
        "{first}"
    );
    for _ in 0..2 {
        let (status, again) = server.post_json(&event).await;
        assert_eq!(status, 202, "{again}");
        assert_eq!(
            (again["stored"].as_u64(), again["duplicates"].as_u64()),
            (Some(0), Some(1)),
            "{again}"
        );
    }
    let listed = server.get_ok("/api/v1/events?type=safety.override").await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 1, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_forge_the_services_own_records() {
    let (_dir, server) = Server::start_fresh();
    for forged in [
        json!({"type": "privacy.subject.erased", "source": "evident", "data": {"subject": "ps_x"}}),
        json!({"type": "evident.dedup.summary", "data": {"folded": 999}}),
        json!({"type": "station.operation", "source": "evident"}),
        json!({"type": "station.operation", "service_record": true}),
    ] {
        let (status, body) = server.post_json(&forged).await;
        assert_eq!(status, 400, "{forged}: {body}");
        let reason = body["errors"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("evident"), "{forged}: {body}");
    }
    let listed = server.get_ok("/api/v1/events?source=evident").await;
    assert!(listed["events"].as_array().unwrap().is_empty(), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_goes_to_dead_letters_and_replays_after_the_fix() {
    let (dir, server) = Server::start_fresh();
    let db = rusqlite::Connection::open(dir.path().join("evident.db")).unwrap();
    db.execute_batch("CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.type = 'test.poison' BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;").unwrap();
    let body = json!([{"type": "test.fine", "data": {"n": 1}}, {"type": "test.poison"}, {"type": "test.fine", "data": {"n": 2}}]);
    let (status, answer) = server.post_json(&body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (answer["stored"].as_u64(), answer["dead_lettered"].as_u64()),
        (Some(2), Some(1)),
        "{answer}"
    );

    let dlq = |cmd: &str| {
        Command::new(BIN)
            .args(["dlq", cmd, "--url", &server.url, "--key", &server.key])
            .output()
            .unwrap()
    };
    let out = dlq("list");
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listed.lines().count(), 1);
    assert!(
        listed.contains("refused by test trigger") && listed.contains("test.poison"),
        "{listed}"
    );

    let reader = server.create_key("read");
    assert_eq!(
        server.get(Some(&reader), "/api/v1/dead-letters").await.0,
        403,
        "admin only"
    );

    db.execute_batch("DROP TRIGGER poison;").unwrap();
    let out = dlq("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 stored"));
    assert_eq!(
        server.get_ok("/api/v1/dead-letters").await["dead_letters"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        server.get_ok("/api/v1/events?type=test.poison").await["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn configured_type_priorities_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    std::fs::write(&config, "version: 1\npipeline:\n  type_priorities:\n    threat.*: critical\nmetrics:\n  require_key: true\n").unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let (_, answer) = server
        .post_json(&json!({"type": "threat.sql.injection", "severity": "low"}))
        .await;
    let id = answer["ids"][0].as_str().unwrap();
    let event = server.get_ok(&format!("/api/v1/events/{id}")).await;
    assert_eq!(
        (event["severity"].as_str(), event["priority"].as_str()),
        (Some("low"), Some("critical"))
    );

    // The critical event was answered from the journal; wait until the writer has moved
    // it into the store, so the commit metrics below exist.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get_ok("/api/v1/stats/pipeline").await["commits"].as_u64() < Some(1) {
        assert!(
            Instant::now() < deadline,
            "the journaled event was never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.get(None, "/metrics").await.0,
        401,
        "the configuration requires a key"
    );
    let http = reqwest::Client::new();
    let text = http
        .get(format!("{}/metrics", server.url))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "evident_events_processed_total 1",
        "evident_commit_duration_seconds_bucket",
        "evident_ingest_duration_seconds_count",
        "evident_queue_events{priority=\"critical\"} 0",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: 1\npipeline:\n  capacity: 5\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("other"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("capacity"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn summaries(server: &Server) -> Vec<Value> {
    server
        .get_ok("/api/v1/events?type=evident.dedup.summary")
        .await["events"]
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_for_summary(server: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = summaries(server).await.first() {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no deduplication summary appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_are_folded_and_the_summary_counts_them_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    std::fs::write(
        &config,
        "version: 1\npipeline:\n  dedup:\n    window_secs: 1\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let storm = "{\"type\":\"equipment.status\",\"severity\":\"warning\",\"data\":{\"status\":\"fault\",\"station_id\":\"STN-A-01\"}}\n".repeat(10);
    let (status, body) = server
        .post(
            Some(&server.key),
            Some("application/x-ndjson"),
            storm.clone(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["stored"].as_u64()),
        (Some(10), Some(1)),
        "{body}"
    );
    let first = body["ids"][0].as_str().unwrap().to_owned();
    let folded = body["folded"].as_array().unwrap();
    assert_eq!(folded.len(), 9);
    assert!(folded.iter().all(|f| f["into"] == first.as_str()), "{body}");
    assert_eq!(
        server.get_ok("/api/v1/stats/pipeline").await["deduplicated"],
        9
    );

    let summary = wait_for_summary(&server).await;
    assert_eq!(summary["data"]["folded"], 9, "{summary}");
    assert_eq!(summary["data"]["folded_into"], first.as_str());
    assert_eq!(summary["data"]["event_type"], "equipment.status");
    let stored = server.get_ok("/api/v1/events?type=equipment.status").await["events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        stored as u64 + summary["data"]["folded"].as_u64().unwrap(),
        10,
        "stored + folded = sent"
    );

    // The window has closed: the next repeat is stored again; critical events are never folded.
    let one = storm.lines().next().unwrap().to_owned();
    let (_, body) = server
        .post(Some(&server.key), Some("application/x-ndjson"), one)
        .await;
    assert_eq!(body["stored"], 1, "{body}");
    let critical = "{\"type\":\"safety.override\",\"severity\":\"critical\"}\n".repeat(3);
    let (_, body) = server
        .post(Some(&server.key), Some("application/x-ndjson"), critical)
        .await;
    assert_eq!(body["stored"], 3, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_open_at_a_crash_is_summarized_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let storm = "{\"type\":\"equipment.status\",\"data\":{\"status\":\"idle\"}}\n".repeat(5);
    let (_, body) = server
        .post(Some(&server.key), Some("application/x-ndjson"), storm)
        .await;
    assert_eq!(
        (
            body["stored"].as_u64(),
            body["folded"].as_array().map(Vec::len)
        ),
        (Some(1), Some(4)),
        "{body}"
    );
    server.kill();
    let restarted = Server::start(dir.path());
    let summary = wait_for_summary(&restarted).await;
    assert_eq!(summary["data"]["folded"], 4, "{summary}");
    assert_eq!(summaries(&restarted).await.len(), 1, "summarized once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_503_and_fails_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-db-size-mb", "1"]);
    let mut answered_503 = None;
    for _ in 0..100 {
        let (status, body) = server
            .post(
                Some(&server.key),
                Some("application/x-ndjson"),
                events(200, "station.operation", "info"),
            )
            .await;
        if status == 503 {
            answered_503 = Some(body);
            break;
        }
        assert_eq!(status, 202, "{body}");
    }
    let body = answered_503.expect("a 1 MiB store never filled up");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    // Smaller writes may still fit for a while; fill the store to the last page.
    let mut full = false;
    for _ in 0..2000 {
        let (status, _) = server
            .post(
                Some(&server.key),
                Some("application/x-ndjson"),
                events(1, "station.operation", "info"),
            )
            .await;
        if status == 503 {
            full = true;
            break;
        }
    }
    assert!(full, "single events kept fitting");
    let (status, ready) = server.get(None, "/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reason"].as_str().unwrap().contains("failing"),
        "{ready}"
    );
    let stats = server.get_ok("/api/v1/stats/pipeline").await;
    assert!(stats["failed"].as_u64().unwrap() > 0, "{stats}");
    // Reads still work while the store is full.
    assert_eq!(
        server
            .get(Some(&server.key), "/api/v1/events?limit=1")
            .await
            .0,
        200
    );
}

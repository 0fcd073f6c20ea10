//! The work that follows the commits instead of slowing them (the data-term index and
//! detection): it still happens for every committed event, once, in order, across a
//! SIGKILL; and when it falls behind, /metrics and /readyz say so until it catches up.

use super::common::Server;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fires once per event whose setpoint is above 300.
const HOT_RULE: &str = "title: Oven setpoint above 300\nid: oven-hot\nlogsource: {product: evident}\ndetection:\n  sel:\n    type: control.setpoint.change\n    data.setpoint|gt: 300\n  condition: sel\nlevel: high\n";

fn hot(n: u64) -> Value {
    json!({"type": "control.setpoint.change", "severity": "info",
           "data": {"setpoint": 301 + n % 50, "n": n, "station_id": format!("OVEN-{}", n % 7)}})
}

/// Sends events `first..first + total` in batches of `batch` from `clients` tasks
/// until they are sent or `stop` is set; the acknowledged `n`s.
async fn load(
    server: &Server,
    clients: u64,
    batch: u64,
    (first, total): (u64, u64),
    stop: Arc<AtomicBool>,
) -> Vec<u64> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU64::new(first));
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (acked, next, client, stop) =
                (acked.clone(), next.clone(), client.clone(), stop.clone());
            let (url, key) = (format!("{}/api/v1/events", server.url), server.key.clone());
            tokio::spawn(async move {
                loop {
                    let start = next.fetch_add(batch, Ordering::Relaxed);
                    if start >= first + total || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let ns: Vec<u64> = (start..start + batch).collect();
                    let body = Value::Array(ns.iter().map(|&n| hot(n)).collect());
                    let Ok(resp) = client.post(&url).bearer_auth(&key).json(&body).send().await
                    else {
                        return;
                    };
                    if resp.status() == 202 {
                        acked.lock().unwrap().extend(ns);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    acked.lock().unwrap().clone()
}

/// The stored events of the load (type `control.setpoint.change`), by paging.
async fn stored_ns(server: &Server) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/events?type=control.setpoint.change&limit=1000".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = server.get_ok(&path).await;
        for e in page["events"].as_array().unwrap() {
            out.push(e["data"]["n"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// The `oven-hot` finding's firing count, once it stops changing and the metrics say
/// detection has caught up (60 s at most).
async fn settled_firings(server: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        let page = server.get_ok("/api/v1/findings?rule_id=oven-hot").await;
        let count = page["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["count"].as_u64().unwrap())
            .sum::<u64>();
        let lag = metric(server, "evident_detection_lag_events").await;
        if lag == Some(0.0) && last == Some(count) {
            return count;
        }
        assert!(
            Instant::now() < deadline,
            "detection did not settle: {count} firings, lag {lag:?}"
        );
        last = Some(count);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The value of an unlabelled metric.
async fn metric(server: &Server, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The term segments' sequence ranges, in order, read from the database file.
fn segment_ranges(dir: &std::path::Path) -> Vec<(i64, i64)> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("evident.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT first_seq, last_seq FROM term_segments ORDER BY first_seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_event_is_indexed_and_detected_once_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("test-rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("oven-hot.yml"), HOT_RULE).unwrap();
    let rules_arg = rules.to_str().unwrap().to_owned();
    let mut server = Server::start_with(dir.path(), &["--rules", &rules_arg]);
    // Load, and SIGKILL the server while it is under it.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let pid = server.pid();
    let loading = load(&server, 4, 200, (0, 40_000), stop.clone());
    let (acked, _) = tokio::join!(loading, async {
        killer.await.unwrap();
        // SIGKILL while requests are still in flight.
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
    });
    server.kill();
    assert!(
        acked.len() > 1000,
        "the load was too short: {} acknowledged",
        acked.len()
    );

    let mut server = Server::start_with(dir.path(), &["--rules", &rules_arg]);
    // A little more after the restart, so the committed stream moves on.
    let more = load(&server, 1, 100, (1_000_000, 100), Arc::default()).await;
    let stored = stored_ns(&server).await;
    let mut unique = stored.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "an event was stored twice");
    for n in acked.iter().chain(&more) {
        assert!(
            unique.binary_search(n).is_ok(),
            "acknowledged event {n} is lost"
        );
    }
    // Detection: one firing per stored event, none skipped, none twice.
    assert_eq!(settled_firings(&server).await, stored.len() as u64);
    // The term index: whatever segments there are tile the sequence numbers, and data
    // filters find events (from the segments or the events past them).
    let ranges = segment_ranges(dir.path());
    let mut next = 1;
    for &(first, last) in &ranges {
        assert_eq!(first, next, "segments {ranges:?} leave a gap or overlap");
        next = last + 1;
    }
    // (A segment takes 32,768 events here; the store's own tests, with small segments,
    // go through many segments, merges and restarts.)
    for n in acked.iter().step_by(acked.len() / 40 + 1) {
        let page = server
            .get_ok(&format!("/api/v1/events?data.n={n}&limit=5"))
            .await;
        let found = page["events"].as_array().unwrap();
        assert_eq!(found.len(), 1, "data.n={n}: {page}");
    }
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detection_backlog_shows_in_metrics_and_readiness_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("test-rules");
    std::fs::create_dir_all(&rules).unwrap();
    // Hundreds of rules with regular expressions over the payload: detection now costs
    // more per event than committing does, so a sustained load outruns it.
    for i in 0..400 {
        std::fs::write(
            rules.join(format!("slow-{i}.yml")),
            format!(
                "title: Slow {i}\nid: slow-{i}\nlogsource: {{product: evident}}\ndetection:\n  sel:\n    data.station_id|re: '^OVEN-(1|2|3)+{i}[0-9]*$'\n  condition: sel\nlevel: low\n"
            ),
        )
        .unwrap();
    }
    let rules_arg = rules.to_str().unwrap().to_owned();
    let server = Server::start_with(dir.path(), &["--rules", &rules_arg]);
    let mut peak = 0.0f64;
    let watch = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(lag) = metric(&server, "evident_detection_lag_events").await {
                peak = peak.max(lag);
                if peak >= 2000.0 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let done = Arc::new(AtomicBool::new(false));
    tokio::join!(
        async {
            watch.await;
            done.store(true, Ordering::Relaxed);
        },
        load(&server, 4, 500, (0, 200_000), done.clone())
    );
    assert!(
        peak >= 2000.0,
        "detection kept up with the load; the backlog never showed (peak {peak})"
    );
    let (status, ready) = server.get(None, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready["detection"]["lag_events"].as_i64().unwrap() > 0,
        "readiness shows the backlog: {ready}"
    );
    // Load over: the backlog drains.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let lag = metric(&server, "evident_detection_lag_events").await;
        if lag == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog did not drain: {lag:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        metric(&server, "evident_detection_lag_seconds").await,
        Some(0.0)
    );
    let (_, ready) = server.get(None, "/readyz").await;
    assert_eq!(ready["detection"]["lag_events"], 0, "{ready}");
}

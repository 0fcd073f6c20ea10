//! `evident send` and `evident query` against a real server.

use super::common::{BIN, Server};
use std::process::Command;

#[tokio::test]
async fn send_then_query() {
    let (dir, server) = Server::start_fresh();
    let file = dir.path().join("events.ndjson");
    let mut lines: Vec<String> = (0..2500)
        .map(|i| format!("{{\"type\":\"station.operation\",\"data\":{{\"n\":{i}}}}}"))
        .collect();
    lines.insert(10, "{\"type\":\"BAD TYPE!\"}".into());
    std::fs::write(&file, lines.join("\n")).unwrap();

    let out = Command::new(BIN)
        .args([
            "send",
            "--batch",
            "1000",
            "--url",
            &server.url,
            "--key",
            &server.key,
        ])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a rejected line makes send fail");
    assert!(
        stderr.contains("line 11: type"),
        "names the bad line: {stderr}"
    );
    assert!(stderr.contains("2500 stored"), "{stderr}");

    let out = Command::new(BIN)
        .args([
            "query",
            "--type",
            "station.*",
            "--limit",
            "1500",
            "--data-dir",
        ])
        .arg(&server.dir)
        .args(["--url", &server.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1500,
        "query follows cursors up to --limit"
    );
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "station.operation");

    let out = Command::new(BIN)
        .args([
            "query",
            "--format",
            "table",
            "--limit",
            "3",
            "--url",
            &server.url,
            "--key",
            &server.key,
        ])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), 4, "header and three rows: {table}");
    assert!(table.lines().next().unwrap().contains("severity"));
}

#[tokio::test]
async fn keys_create_refuses_unknown_roles() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["keys", "create", "--role", "root", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
}

/// `examples/events.ndjson`, the sample the README sends, in the four shapes.
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/events.ndjson");

#[tokio::test]
async fn the_sample_events_file_is_accepted_in_full() {
    let sample = std::fs::read_to_string(SAMPLE).unwrap();
    let lines: Vec<&str> = sample.lines().filter(|l| !l.trim().is_empty()).collect();
    for shape in ["\"eventType\"", "\"agent_id\"", "\"details\"", "\"actor\""] {
        assert!(
            lines.iter().any(|l| l.contains(shape)),
            "the sample has a line with {shape}"
        );
    }
    let (_dir, server) = Server::start_fresh();

    // As the README runs it, with the service and key given through the environment.
    let out = Command::new(BIN)
        .args(["send", SAMPLE])
        .env("EVIDENT_URL", &server.url)
        .env("EVIDENT_KEY", &server.key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let n = lines.len();
    assert!(
        stderr.contains(&format!(
            "sent {n} events: {n} stored, 0 already stored, 0 rejected"
        )),
        "{stderr}"
    );
    let page = server.get_ok("/api/v1/events?limit=1000").await;
    let sent = super::common::sent_events(&page).count();
    assert_eq!(sent, n, "{page}");
}

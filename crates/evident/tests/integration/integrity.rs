//! Tamper evidence on the embedded store: a stopped server's data directory is edited
//! behind its back, and `evident verify` must name what changed.

use super::common::{BIN, Server, stored_ids};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Runs `evident verify` on `dir` with `public_key`: (exit code, stdout).
fn verify(dir: &Path, public_key: &str) -> (i32, String) {
    verify_with(dir, public_key, &["--no-witness"])
}

/// `evident verify --public-key KEY --data-dir DIR` with `extra` arguments: (exit code,
/// output).
pub(crate) fn verify_with(dir: &Path, public_key: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["verify", "--public-key", public_key, "--data-dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A copy of `dir`, to tamper with.
fn copy(dir: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        }
    }
    to
}

fn sql(dir: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(dir.join("evident.db")).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[tokio::test]
async fn verify_names_the_event_altered_removed_or_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--checkpoint-every", "1"]);
    let key = server.get_ok("/api/v1/integrity/key").await;
    assert_eq!(key["algorithm"], "ed25519");
    let public = key["public_key"].as_str().unwrap().to_owned();
    let events: Vec<Value> = (0..30)
        .map(|i| json!({"type": "user.login", "target": {"resource": format!("user{i}")}, "data": {"n": i}}))
        .collect();
    let (status, body) = server.post_json(&Value::Array(events)).await;
    assert_eq!(status, 202, "{body}");
    // The service checks its own log on request (admin keys only).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let walked = server.get_ok("/api/v1/integrity/verify").await;
    assert_eq!(walked["ok"], true, "{walked}");
    assert!(
        walked["verified_events"].as_u64().unwrap() >= 30,
        "{walked}"
    );
    let reader = server.create_key("read");
    let (status, _) = server.get(Some(&reader), "/api/v1/integrity/verify").await;
    assert_eq!(status, 403);
    assert!(server.terminate().success());
    let (code, out) = verify(dir.path(), &public);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified"), "{out}");
    assert!(
        !out.contains("unverified"),
        "a clean stop signs everything: {out}"
    );

    let (first, first_id): (i64, uuid::Uuid) = {
        let conn = rusqlite::Connection::open(dir.path().join("evident.db")).unwrap();
        conn.query_row(
            "SELECT seq, id FROM events WHERE body LIKE '%user5\"%' ORDER BY seq LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    uuid::Uuid::from_slice(&r.get::<_, Vec<u8>>(1)?).unwrap(),
                ))
            },
        )
        .unwrap()
    };

    // One changed byte in an event's body.
    let t = copy(dir.path());
    sql(
        t.path(),
        &format!("UPDATE events SET body = replace(body, 'user5', 'userX') WHERE seq = {first}"),
    );
    let (code, out) = verify(t.path(), &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("event {first} was altered")), "{out}");
    assert!(out.contains(&format!("event id: {first_id}")), "{out}");

    // A query column changed behind the body's back: type, then time.
    for change in [
        format!("UPDATE events SET type = 'user.logout' WHERE seq = {first}"),
        format!("UPDATE events SET time = time + 1 WHERE seq = {first}"),
    ] {
        let t = copy(dir.path());
        sql(t.path(), &change);
        let (code, out) = verify(t.path(), &public);
        assert_eq!(code, 1, "{change}: {out}");
        assert!(
            out.contains(&format!("event {first} was altered")),
            "{change}: {out}"
        );
    }

    // A deleted row.
    let t = copy(dir.path());
    sql(t.path(), &format!("DELETE FROM events WHERE seq = {first}"));
    let (code, out) = verify(t.path(), &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("event {first} is missing")), "{out}");

    // The tail cut off before the last checkpoint.
    let t = copy(dir.path());
    sql(
        t.path(),
        "DELETE FROM events WHERE seq > (SELECT MAX(seq) - 3 FROM events)",
    );
    let (code, out) = verify(t.path(), &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is missing"), "{out}");

    // Body and recorded leaf rewritten together: the checkpoint range is named.
    let t = copy(dir.path());
    let conn = rusqlite::Connection::open(t.path().join("evident.db")).unwrap();
    let original: String = conn
        .query_row("SELECT body FROM events WHERE seq = ?1", [first], |r| {
            r.get(0)
        })
        .unwrap();
    let forged = original.replace("user5", "userX");
    let leaf = evident_integrity::merkle::leaf_hash(forged.as_bytes());
    conn.execute(
        "UPDATE events SET body = ?1, leaf = ?2 WHERE seq = ?3",
        rusqlite::params![forged, leaf.as_slice(), first],
    )
    .unwrap();
    drop(conn);
    let (code, out) = verify(t.path(), &public);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("do not match their signed checkpoint"),
        "{out}"
    );

    // A checkpoint altered, or checked with another key.
    let t = copy(dir.path());
    sql(t.path(), "UPDATE checkpoints SET size = size + 1");
    let (code, out) = verify(t.path(), &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not verify"), "{out}");
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let (code, out) = verify(dir.path(), other);
    assert_ne!(code, 0, "{out}");
    let (code, out) = verify(dir.path(), "not base64!");
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn a_witness_catches_a_rollback_of_events_and_checkpoints_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--checkpoint-every", "1"]);
    let public = server.public_key().await;
    let batch = |from: usize| {
        Value::Array(
            (from..from + 20)
                .map(|i| json!({"type": "config.change", "data": {"n": i}}))
                .collect(),
        )
    };
    assert_eq!(server.post_json(&batch(0)).await.0, 202);
    // Wait for a checkpoint of the first batch alone.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(server.post_json(&batch(20)).await.0, 202);
    assert!(server.terminate().success());
    let witness = dir.path().join("outside").join("witness");
    let with_witness = ["--witness", witness.to_str().unwrap()];
    let (code, out) = verify_with(dir.path(), &public, &with_witness);
    assert_eq!(code, 0, "{out}");
    assert!(witness.try_exists().unwrap(), "{out}");

    // Roll the store back to its first checkpoint: events and checkpoints after it go.
    let t = copy(dir.path());
    let conn = rusqlite::Connection::open(t.path().join("evident.db")).unwrap();
    let (first_size, start): (i64, i64) = conn
        .query_row(
            "SELECT MIN(size), (SELECT start_seq FROM integrity_log) FROM checkpoints",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    conn.execute("DELETE FROM checkpoints WHERE size > ?1", [first_size])
        .unwrap();
    conn.execute("DELETE FROM events WHERE seq >= ?1", [start + first_size])
        .unwrap();
    drop(conn);
    let (_, out) = verify(t.path(), &public);
    // As a log the rolled-back store is consistent on its own (only the side tables,
    // left as they were, may disagree with the records rolled back with the events).
    assert!(
        out.contains("verified") && !out.contains("TAMPERED:"),
        "on its own the rolled-back log is consistent: {out}"
    );
    let (code, out) = verify_with(t.path(), &public, &with_witness);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rolled back"), "{out}");
}

/// Runs `evident verify-proof` on `proof` with `public_key`: (exit code, output).
pub(crate) fn verify_proof(proof: &Value, public_key: &str) -> (i32, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), proof.to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["verify-proof", "--public-key", public_key])
        .arg(file.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn proofs_hold_offline_and_fail_for_a_tampered_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--checkpoint-every", "1"]);
    let public = server.public_key().await;
    let events: Vec<Value> = (0..25)
        .map(|i| json!({"type": "station.operation", "facility": if i % 2 == 0 { "plant-1" } else { "plant-2" }, "data": {"n": i}}))
        .collect();
    let (status, body) = server.post_json(&Value::Array(events)).await;
    assert_eq!(status, 202, "{body}");
    let ids = stored_ids(&body);
    let reader = server.create_key_with("read", &["--facility", "plant-1"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let proof = loop {
        let (status, body) = server
            .get(Some(&reader), &format!("/api/v1/events/{}/proof", ids[4]))
            .await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 409, "before the next checkpoint: {body}");
        assert!(
            std::time::Instant::now() < deadline,
            "never covered: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(proof["format"], "evident event proof v1", "{proof}");
    let (code, out) = verify_proof(&proof, &public);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&ids[4]), "names the event: {out}");
    // Outside the key's facilities there is no proof (nor event) to be had.
    let (status, _) = server
        .get(Some(&reader), &format!("/api/v1/events/{}/proof", ids[5]))
        .await;
    assert_eq!(status, 404);

    // Another key, or a changed event, does not hold.
    let other = evident_integrity::Signer::generate().public_key();
    let other = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, other);
    let (code, out) = verify_proof(&proof, &other);
    assert_eq!(code, 1, "{out}");
    let mut changed = proof.clone();
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        proof["event"].as_str().unwrap(),
    )
    .unwrap();
    let text = String::from_utf8(bytes)
        .unwrap()
        .replace("\"n\":4", "\"n\":5");
    changed["event"] =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text).into();
    let (code, out) = verify_proof(&changed, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not hold"), "{out}");

    // An event altered in the store behind the service's back gets a proof that fails.
    assert!(server.terminate().success());
    sql(
        dir.path(),
        &format!(
            "UPDATE events SET body = replace(body, '\"n\":4', '\"n\":40') WHERE id = x'{}'",
            ids[4].replace('-', "")
        ),
    );
    let server = Server::start_with(dir.path(), &["--checkpoint-every", "1"]);
    let (status, tampered) = server
        .get(
            Some(&server.key),
            &format!("/api/v1/events/{}/proof", ids[4]),
        )
        .await;
    assert_eq!(status, 200, "{tampered}");
    let (code, out) = verify_proof(&tampered, &public);
    assert_eq!(code, 1, "{out}");
}

/// The audit's two cases: every fold deleted, and findings marked resolved with their
/// evidence deleted, behind the service's back. `evident verify` names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_edits_to_folds_and_findings() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--checkpoint-every", "1"]);
    let public = server.public_key().await;
    let storm = "{\"type\":\"equipment.status\",\"data\":{\"status\":\"idle\"}}\n".repeat(4);
    let (status, body) = server
        .post(Some(&server.key), Some("application/x-ndjson"), storm)
        .await;
    assert_eq!(
        body["folded"].as_array().map(Vec::len),
        Some(3),
        "{status} {body}"
    );
    let failures: Vec<Value> = (0..6)
        .map(|_| json!({"type": "auth.login.failure", "actor": {"user_id": "bob", "ip": "10.0.0.7"}}))
        .collect();
    let (status, body) = server.post_json(&Value::Array(failures)).await;
    assert_eq!(status, 202, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let finding = loop {
        let page = server
            .get_ok("/api/v1/findings?rule_id=5d0e8a52-3c1b-4f7e-9a64-2b7c1d9e0a11")
            .await;
        if let Some(f) = page["findings"].as_array().and_then(|f| f.first()) {
            break f["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no brute-force finding: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let changed = reqwest::Client::new()
        .patch(format!("{}/api/v1/findings/{finding}", server.url))
        .bearer_auth(&server.key)
        .json(&json!({"status": "acknowledged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200, "{:?}", changed.text().await);
    let walked = server.get_ok("/api/v1/integrity/verify").await;
    assert_eq!(
        (&walked["ok"], &walked["beside"]),
        (&json!(true), &json!([])),
        "{walked}"
    );
    assert!(server.terminate().success());
    let (code, out) = verify(dir.path(), &public);
    assert_eq!(code, 0, "clean before the edits: {out}");

    let t = copy(dir.path());
    sql(t.path(), "DELETE FROM folds");
    let (code, out) = verify(t.path(), &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED beside the log"), "{out}");
    assert!(
        out.contains("folds table has no such row (removed)"),
        "{out}"
    );

    let t = copy(dir.path());
    sql(
        t.path(),
        "UPDATE findings SET status = 'resolved', open_key = NULL; DELETE FROM finding_events;",
    );
    let (code, out) = verify(t.path(), &public);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "finding {finding}: its status is resolved, but the log records it acknowledged"
        )),
        "{out}"
    );
    assert!(
        out.contains("finding_events has no such link (removed)"),
        "{out}"
    );
}

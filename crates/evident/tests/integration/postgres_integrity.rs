//! Tamper evidence on PostgreSQL: a stopped server's database is edited behind its back
//! with SQL, and `evident verify --database-url` must name what changed.

use super::common::{BIN, Server, stored_ids};
use super::integrity::verify_proof;
use evident_integrity::merkle::leaf_hash;
use evident_integrity::{Checkpoint, Frontier, Signer};
use evident_store::testsuite::ScratchPostgres;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `evident verify` on the database at `url`, with `data_dir` and `extra` arguments:
/// (exit code, output).
fn verify_in(url: &str, data_dir: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["verify", "--database-url", url, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `evident verify --database-url URL --public-key KEY --no-witness`, with a data
/// directory that holds no signing key.
fn verify(url: &str, public_key: &str) -> (i32, String) {
    let empty = tempfile::tempdir().unwrap();
    verify_in(
        url,
        empty.path(),
        &["--public-key", public_key, "--no-witness"],
    )
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn sql(url: &str, statement: &str) {
    connect(url).await.batch_execute(statement).await.unwrap();
}

/// A copy of `db` with `statement` run on it.
async fn tampered(db: &ScratchPostgres, statement: &str) -> ScratchPostgres {
    let copy = db.copy().await;
    sql(&copy.url, statement).await;
    copy
}

#[tokio::test]
async fn verify_names_what_was_changed_in_the_postgres_store() {
    let db = ScratchPostgres::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(
        dir.path(),
        &["--database-url", &db.url, "--checkpoint-every", "1"],
    );
    let public = server.public_key().await;
    let events: Vec<Value> = (0..30)
        .map(|i| json!({"type": "user.login", "target": {"resource": format!("user{i}")}, "data": {"n": i}}))
        .collect();
    let (status, body) = server.post_json(&Value::Array(events)).await;
    assert_eq!(status, 202, "{body}");
    let ids = stored_ids(&body);

    // The service checks its own log on request, once a checkpoint covers the events.
    let deadline = Instant::now() + Duration::from_secs(10);
    let walked = loop {
        let walked = server.get_ok("/api/v1/integrity/verify").await;
        assert_eq!(walked["ok"], true, "{walked}");
        if walked["verified_events"].as_u64() == Some(30) {
            break walked;
        }
        assert!(Instant::now() < deadline, "never signed: {walked}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(walked["unverified_tail"], 0, "{walked}");
    // An event's proof holds offline with the public key alone.
    let reader = server.create_key_with("read", &["--database-url", &db.url]);
    let (status, proof) = server
        .get(Some(&reader), &format!("/api/v1/events/{}/proof", ids[4]))
        .await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["index"], 4, "{proof}");
    let (code, out) = verify_proof(&proof, &public);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&ids[4]), "names the event: {out}");
    assert!(server.terminate().success());

    let (code, out) = verify(&db.url, &public);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified 30 events"), "{out}");
    assert!(
        !out.contains("unverified"),
        "a clean stop signs everything: {out}"
    );
    // Without --public-key the key comes from the data directory, when it holds one.
    let empty = tempfile::tempdir().unwrap();
    let (code, out) = verify_in(&db.url, empty.path(), &["--no-witness"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--public-key"), "{out}");
    let (code, out) = verify_in(&db.url, dir.path(), &["--no-witness"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified 30 events"), "{out}");

    let client = connect(&db.url).await;
    let row = client
        .query_one(
            "SELECT seq, body FROM events WHERE body LIKE '%user5\"%'",
            &[],
        )
        .await
        .unwrap();
    let (first, original): (i64, String) = (row.get(0), row.get(1));
    drop(client);

    // One changed byte in an event's body.
    let t = tampered(
        &db,
        &format!("UPDATE events SET body = replace(body, 'user5', 'userX') WHERE seq = {first}"),
    )
    .await;
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("event {first} was altered")), "{out}");
    assert!(out.contains("affected:"), "{out}");

    // A query column changed behind the body's back: type, then time.
    for change in [
        format!("UPDATE events SET type = 'user.logout' WHERE seq = {first}"),
        format!("UPDATE events SET time = time + interval '1 microsecond' WHERE seq = {first}"),
    ] {
        let t = tampered(&db, &change).await;
        let (code, out) = verify(&t.url, &public);
        assert_eq!(code, 1, "{change}: {out}");
        assert!(
            out.contains(&format!("event {first} was altered")),
            "{change}: {out}"
        );
    }

    // A deleted row.
    let t = tampered(&db, &format!("DELETE FROM events WHERE seq = {first}")).await;
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("event {first} is missing")), "{out}");

    // The tail cut off before the last checkpoint.
    let t = tampered(
        &db,
        "DELETE FROM events WHERE seq > (SELECT MAX(seq) - 3 FROM events)",
    )
    .await;
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("event 28 is missing"), "{out}");

    // Body and recorded leaf rewritten together: the checkpoint range is named.
    let forged = original.replace("user5", "userX");
    let forged_leaf = leaf_hash(forged.as_bytes());
    let t = db.copy().await;
    connect(&t.url)
        .await
        .execute(
            "UPDATE events SET body = $1, leaf = $2 WHERE seq = $3",
            &[&forged, &forged_leaf.as_slice(), &first],
        )
        .await
        .unwrap();
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("do not match their signed checkpoint"),
        "{out}"
    );

    // A forged row with a leaf of its own inserted beside a stored one (PostgreSQL does
    // not keep seq unique across partitions): the doubled sequence number is named.
    let t = db.copy().await;
    connect(&t.url)
        .await
        .execute(
            "INSERT INTO events (seq, id, time, received_at, retention_days, type, category,
                 severity, priority, outcome, data, body, leaf)
             SELECT seq, id, time, received_at, retention_days, type, category, severity,
                 priority, outcome, data, $1, $2 FROM events WHERE seq = $3",
            &[&forged, &forged_leaf.as_slice(), &first],
        )
        .await
        .unwrap();
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "event {first} found where event {} belongs",
            first + 1
        )),
        "{out}"
    );

    // Two rows swapped whole (bodies, leaves and query columns; the sequence numbers
    // stay): each row is consistent in itself, the checkpoint's head is not.
    let t = tampered(
        &db,
        &format!(
            "UPDATE events SET seq = CASE seq WHEN {first} THEN {second} ELSE {first} END
              WHERE seq IN ({first}, {second})",
            second = first + 1
        ),
    )
    .await;
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("do not match their signed checkpoint"),
        "{out}"
    );
    // Only bodies and leaves swapped: the query columns no longer agree with the bodies.
    let t = tampered(
        &db,
        &format!(
            "UPDATE events e SET body = o.body, leaf = o.leaf FROM events o
              WHERE (e.seq, o.seq) IN (({first}, {second}), ({second}, {first}))",
            second = first + 1
        ),
    )
    .await;
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("event {first} was altered")), "{out}");

    // A checkpoint altered.
    let t = tampered(&db, "UPDATE checkpoints SET size = size + 1").await;
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not verify"), "{out}");

    // The checkpoints replaced by one over the true head, signed by another key.
    let t = db.copy().await;
    let client = connect(&t.url).await;
    let frontier: Vec<u8> = client
        .query_one("SELECT log_frontier FROM commit_seq", &[])
        .await
        .unwrap()
        .get(0);
    let frontier = Frontier::from_bytes(&frontier).unwrap();
    let thief = Signer::generate();
    let signed = thief
        .sign(Checkpoint {
            origin: "evident".into(),
            size: frontier.size(),
            root: frontier.root(),
            time: 1,
        })
        .unwrap();
    client
        .execute(
            "WITH gone AS (DELETE FROM checkpoints)
             INSERT INTO checkpoints (size, root, time, origin, key_id, signature)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &(signed.checkpoint.size as i64),
                &signed.checkpoint.root.as_slice(),
                &signed.checkpoint.time,
                &signed.checkpoint.origin,
                &signed.key_id,
                &signed.signature.as_slice(),
            ],
        )
        .await
        .unwrap();
    drop(client);
    let (code, out) = verify(&t.url, &public);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("signed by key {}", signed.key_id)),
        "{out}"
    );

    // Checked with another key, or with no key at all.
    let other = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        Signer::generate().public_key(),
    );
    let (code, out) = verify(&db.url, &other);
    assert_eq!(code, 1, "{out}");
    let (code, out) = verify(&db.url, "not base64!");
    assert_eq!(code, 2, "{out}");
    let (code, out) = verify("postgres://postgres@127.0.0.1:1/none", &public);
    assert_eq!(code, 2, "{out}");
}

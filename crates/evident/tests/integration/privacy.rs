//! Personal data in the running service: sealed at rest, pseudonyms for rules and for
//! readers without the permission, erasure by destroying the subject's key (with the log
//! still verifying), and subject export.

use super::common::Server;
use super::integrity::verify_with;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const BRUTE_FORCE: &str = "5d0e8a52-3c1b-4f7e-9a64-2b7c1d9e0a11";
const USER: &str = "erin.unique-subject-7731";
const IP: &str = "198.51.100.77";
const AGENT: &str = "AgentSecretUA/1.0 (erin laptop)";

/// Every file under `dir` (database, its WAL, journal, key store, server log) whose raw
/// bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(entry.display().to_string());
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn assert_no_plaintext(dir: &Path, when: &str) {
    for needle in [USER, IP, "AgentSecretUA"] {
        let found = files_containing(dir, needle);
        assert!(
            found.is_empty(),
            "{when}: `{needle}` in the clear in {found:?}"
        );
    }
}

fn failures(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "type": "auth.login.failure", "severity": "warning",
                "time": format!("2026-03-01T10:00:{:02}Z", i),
                "actor": {"user_id": USER, "ip": IP, "user_agent": AGENT},
                "facility": "plant-1", "data": {"attempt": i},
            })
        })
        .collect()
}

async fn wait_for(server: &Server, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = server.get_ok(path).await;
        if ready(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never got there: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn personal_data_is_sealed_detected_by_pseudonym_and_erased() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--checkpoint-every", "1"]);
    let (status, body) = server.post_json(&Value::Array(failures(6))).await;
    assert_eq!(status, 202, "{body}");

    // An admin key reads the clear values, and may filter by them.
    let page = server
        .get_ok(&format!("/api/v1/events?user_id={USER}"))
        .await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 6, "{page}");
    for event in events {
        assert_eq!(event["actor"]["user_id"], USER, "{event}");
        assert_eq!(event["actor"]["ip"], IP, "{event}");
        assert_eq!(event["actor"]["user_agent"], AGENT, "{event}");
        assert!(event.get("sealed").is_none(), "{event}");
    }
    let export = server
        .get_ok(&format!("/api/v1/privacy/subjects/{USER}"))
        .await;
    assert_eq!(export["key"]["state"], "held", "{export}");
    assert_eq!(export["events"].as_array().unwrap().len(), 6, "{export}");
    let pseudonym = export["pseudonym"].as_str().unwrap().to_owned();
    assert!(pseudonym.starts_with("ps_"), "{export}");

    // Detection counts the five failed logins per user on the pseudonym.
    let findings = wait_for(
        &server,
        &format!("/api/v1/findings?rule_id={BRUTE_FORCE}"),
        |page| !page["findings"].as_array().unwrap().is_empty(),
    )
    .await;
    let finding = &findings["findings"][0];
    assert_eq!(
        finding["group_key"],
        format!("actor.user_id={USER}"),
        "grouped by pseudonym, shown to an admin in the clear: {finding}"
    );

    // A read key sees pseudonyms only, and may not test clear values.
    let reader = server.create_key("read");
    let (status, page) = server
        .get(Some(&reader), "/api/v1/events?type=auth.login.failure")
        .await;
    assert_eq!(status, 200, "{page}");
    let text = page.to_string();
    assert!(!text.contains(USER) && !text.contains(IP) && !text.contains("AgentSecretUA"));
    assert!(
        !text.contains("\"sealed\""),
        "no ciphertext for readers: {page}"
    );
    assert_eq!(page["events"][0]["actor"]["user_id"], pseudonym.as_str());
    let (status, error) = server
        .get(Some(&reader), &format!("/api/v1/events?user_id={USER}"))
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("actor.user_id"),
        "{error}"
    );
    let (status, page) = server
        .get(
            Some(&reader),
            &format!("/api/v1/events?user_id={pseudonym}"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["events"].as_array().unwrap().len(), 6, "{page}");
    let (status, _) = server
        .get(Some(&reader), &format!("/api/v1/privacy/subjects/{USER}"))
        .await;
    assert_eq!(status, 403);
    // A read key granted the permission reads the clear values.
    let personal = server.create_key_with("read", &["--personal"]);
    let (_, page) = server
        .get(Some(&personal), &format!("/api/v1/events?user_id={USER}"))
        .await;
    assert_eq!(page["events"][0]["actor"]["user_id"], USER, "{page}");

    // Nothing of the subject is in the clear on disk, logs included.
    assert_no_plaintext(dir.path(), "before erasure");

    // Erasure destroys the key and is itself recorded.
    let (status, erased) = server
        .post_to("/api/v1/privacy/erasure", &json!({"subject": USER}))
        .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["subject"], pseudonym.as_str());
    assert_eq!(erased["key_destroyed"], true);
    let audit_id = erased["audit_event"].as_str().unwrap().to_owned();
    let audit = server.get_ok(&format!("/api/v1/events/{audit_id}")).await;
    assert_eq!(audit["type"], "privacy.subject.erased", "{audit}");
    assert_eq!(audit["data"]["subject"], pseudonym.as_str(), "{audit}");

    let page = server
        .get_ok(&format!("/api/v1/events?user_id={pseudonym}"))
        .await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 6, "the events stay: {page}");
    for event in events {
        assert_eq!(event["actor"]["user_id"], pseudonym.as_str(), "{event}");
        assert_eq!(event["sealed"]["erased"], true, "{event}");
    }
    let export = server
        .get_ok(&format!("/api/v1/privacy/subjects/{USER}"))
        .await;
    assert_eq!(export["key"]["state"], "erased", "{export}");
    // The finding raised before the erasure is still there, under the pseudonym now.
    let findings = server
        .get_ok(&format!("/api/v1/findings?rule_id={BRUTE_FORCE}"))
        .await;
    assert_eq!(findings["findings"].as_array().unwrap().len(), 1);
    let finding = &findings["findings"][0];
    assert_eq!(
        finding["group_key"],
        format!("actor.user_id={pseudonym}"),
        "{finding}"
    );
    assert_eq!(
        finding["personal"]["erased"],
        json!(["actor.user_id"]),
        "{finding}"
    );

    // The log still verifies: its hashes cover the ciphertext, which did not change.
    let public = server.public_key().await;
    assert!(server.terminate().success());
    let (code, text) = verify_with(dir.path(), &public, &["--no-witness"]);
    assert_eq!(code, 0, "{text}");
    assert_no_plaintext(dir.path(), "after erasure");

    // Erased stays erased across a restart.
    let server = Server::start_with(dir.path(), &["--checkpoint-every", "1"]);
    let page = server
        .get_ok(&format!("/api/v1/events?user_id={pseudonym}"))
        .await;
    assert_eq!(page["events"][0]["sealed"]["erased"], true, "{page}");
}

/// Six failed logins of bob from 10.0.0.7 within a minute.
fn bob_brute_force() -> Vec<Value> {
    (0..6)
        .map(|i| {
            json!({
                "type": "auth.login.failure",
                "time": format!("2026-03-01T11:00:{:02}Z", i * 5),
                "actor": {"user_id": "bob", "ip": "10.0.0.7"},
            })
        })
        .collect()
}

/// The finding of `rule` as `key` sees it in the list (waiting up to 10 s for it).
async fn listed_finding(server: &Server, key: &str, rule: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = server
            .get(Some(key), &format!("/api/v1/findings?rule_id={rule}"))
            .await;
        assert_eq!(status, 200, "{page}");
        if let Some(finding) = page["findings"].get(0) {
            return finding.clone();
        }
        assert!(Instant::now() < deadline, "no finding of {rule}: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every way a finding is shown to `key`: listed, by id, in a status change's answer,
/// and embedded in its evidence event; as JSON text each.
async fn finding_views(server: &Server, key: &str, rule: &str) -> Vec<(String, Value)> {
    let listed = listed_finding(server, key, rule).await;
    let id = listed["id"].as_str().unwrap().to_owned();
    let (status, one) = server
        .get(Some(key), &format!("/api/v1/findings/{id}"))
        .await;
    assert_eq!(status, 200, "{one}");
    let resp = reqwest::Client::new()
        .patch(format!("{}/api/v1/findings/{id}", server.url))
        .bearer_auth(key)
        .json(&json!({"status": "acknowledged", "by": "dana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let patched: Value = resp.json().await.unwrap();
    let evidence = listed["evidence"][0].as_str().unwrap().to_owned();
    let (status, event) = server
        .get(
            Some(key),
            &format!("/api/v1/events/{evidence}?include=findings"),
        )
        .await;
    assert_eq!(status, 200, "{event}");
    let embedded = event["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the event embeds its finding: {event}"));
    vec![
        ("listed".into(), listed),
        ("by id".into(), one),
        ("status change".into(), patched),
        ("on its event".into(), embedded),
        ("its event".into(), event),
    ]
}

#[tokio::test]
async fn findings_show_clear_values_to_personal_readers() {
    let (_dir, server) = Server::start_fresh();
    let (status, body) = server.post_json(&Value::Array(bob_brute_force())).await;
    assert_eq!(status, 202, "{body}");
    let per_user = BRUTE_FORCE;
    let per_address = "5d0e8a52-3c1b-4f7e-9a64-2b7c1d9e0a12";
    let reader = server.create_key("read");
    let personal = server.create_key_with("read", &["--personal"]);
    let user_ps = server.pseudonym("bob");
    let ip_ps = server.pseudonym("10.0.0.7");

    for (rule, field, clear, pseudonym) in [
        (per_user, "actor.user_id", "bob", &user_ps),
        (per_address, "actor.ip", "10.0.0.7", &ip_ps),
    ] {
        for key in [&server.key, &personal] {
            for (place, finding) in finding_views(&server, key, rule).await {
                if place == "its event" {
                    continue;
                }
                assert_eq!(
                    finding["group_key"],
                    format!("{field}={clear}"),
                    "{place}: {finding}"
                );
                assert_eq!(finding["personal"]["revealed"], json!([field]), "{place}");
            }
        }
        for (place, shown) in finding_views(&server, &reader, rule).await {
            // (Quoted or after `=`: a pseudonym's base64 could hold "bob" by chance.)
            let text = shown.to_string();
            assert!(
                !text.contains("\"bob\"") && !text.contains("=bob") && !text.contains("10.0.0.7"),
                "{place}: a clear value shown to a reader without the permission: {text}"
            );
            if place != "its event" {
                assert_eq!(
                    shown["group_key"],
                    format!("{field}={pseudonym}"),
                    "{place}: {shown}"
                );
            }
        }
    }
}

#[tokio::test]
async fn protection_can_be_turned_off_and_fields_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--personal-fields", "actor.user_id,data.email"],
    );
    let event = json!({
        "type": "data.export", "actor": {"user_id": USER, "ip": IP},
        "data": {"email": "erin@example.test", "rows": 5},
    });
    let (status, body) = server.post_json(&json!([event])).await;
    assert_eq!(status, 202, "{body}");
    let reader = server.create_key("read");
    let (_, page) = server
        .get(Some(&reader), "/api/v1/events?type=data.export")
        .await;
    let event = &page["events"][0];
    assert!(
        event["actor"]["user_id"]
            .as_str()
            .unwrap()
            .starts_with("ps_")
    );
    assert!(event["data"]["email"].as_str().unwrap().starts_with("ps_"));
    assert_eq!(
        event["actor"]["ip"], IP,
        "not configured as personal: {event}"
    );
    assert_eq!(event["data"]["rows"], 5);
    let page = server
        .get_ok("/api/v1/events?data.email=erin@example.test")
        .await;
    assert_eq!(
        page["events"][0]["data"]["email"], "erin@example.test",
        "{page}"
    );
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--personal-fields", "none"]);
    let (status, _) = server.post_json(&Value::Array(failures(1))).await;
    assert_eq!(status, 202);
    let reader = server.create_key("read");
    let (_, page) = server.get(Some(&reader), "/api/v1/events").await;
    assert_eq!(page["events"][0]["actor"]["user_id"], USER, "{page}");
    let (status, _) = server
        .post_to("/api/v1/privacy/erasure", &json!({"subject": USER}))
        .await;
    assert_eq!(status, 404, "no protection, no erasure");
}

/// Every row of every table of the database at `url`, as text.
async fn database_text(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tables = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )
        .await
        .unwrap();
    let mut text = String::new();
    for table in tables {
        let name: String = table.get(0);
        // The name comes from the catalog, quoted as an identifier.
        let row = client
            .query_one(
                &format!(
                    "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{}\" t",
                    name.replace('"', "\"\"")
                ),
                &[],
            )
            .await
            .unwrap();
        text.push_str(&row.get::<_, String>(0));
    }
    text
}

#[tokio::test]
async fn on_postgres_personal_data_is_sealed_and_erasure_keeps_the_log_verifying() {
    let db = evident_store::testsuite::ScratchPostgres::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(
        dir.path(),
        &["--database-url", &db.url, "--checkpoint-every", "1"],
    );
    let (status, body) = server.post_json(&Value::Array(failures(6))).await;
    assert_eq!(status, 202, "{body}");
    let page = server
        .get_ok(&format!("/api/v1/events?user_id={USER}"))
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 6, "{page}");
    assert_eq!(page["events"][0]["actor"]["ip"], IP);
    let stored = database_text(&db.url).await;
    for needle in [USER, IP, "AgentSecretUA"] {
        assert!(
            !stored.contains(needle),
            "`{needle}` in the clear in the database"
        );
    }
    assert!(stored.contains("ps_"), "pseudonyms are stored");

    let (status, erased) = server
        .post_to("/api/v1/privacy/erasure", &json!({"subject": USER}))
        .await;
    assert_eq!(status, 200, "{erased}");
    let page = server
        .get_ok(&format!(
            "/api/v1/events?user_id={}",
            erased["subject"].as_str().unwrap()
        ))
        .await;
    assert_eq!(page["events"][0]["sealed"]["erased"], true, "{page}");
    let public = server.public_key().await;
    assert!(server.terminate().success());
    let empty = tempfile::tempdir().unwrap();
    let (code, text) = verify_with(
        empty.path(),
        &public,
        &["--no-witness", "--database-url", &db.url],
    );
    assert_eq!(code, 0, "{text}");
    assert_no_plaintext(dir.path(), "the data directory, after erasure");
}

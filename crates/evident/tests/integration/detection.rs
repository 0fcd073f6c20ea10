//! Detection in the running service: rules over committed events into findings, the
//! findings API, and correlation windows across restarts and crashes.

use super::common::Server;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const PER_USER: &str = "5d0e8a52-3c1b-4f7e-9a64-2b7c1d9e0a11";
const PER_ADDRESS: &str = "5d0e8a52-3c1b-4f7e-9a64-2b7c1d9e0a12";

/// A failed login for `user` from `ip`, `second` seconds into the test's minute.
fn failure(user: &str, ip: &str, second: u32) -> (String, Value) {
    let id = uuid::Uuid::new_v4().to_string();
    let event = json!({
        "id": id, "type": "auth.login.failure", "severity": "warning",
        "time": format!("2026-03-01T10:{:02}:{:02}Z", second / 60, second % 60),
        "actor": {"user_id": user, "ip": ip}, "facility": "plant-1",
    });
    (id, event)
}

async fn post(server: &Server, events: Vec<Value>) {
    let (status, body) = server.post_json(&Value::Array(events)).await;
    assert_eq!(status, 202, "{body}");
}

/// The findings of `rule` for `group`, once `ready` holds for them (10 s at most).
async fn findings_until(
    server: &Server,
    rule: &str,
    group: &str,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = server
            .get_ok(&format!("/api/v1/findings?rule_id={rule}&limit=1000"))
            .await;
        let found: Vec<Value> = page["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["group_key"] == group)
            .cloned()
            .collect();
        if ready(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "findings of {rule} for {group} never got there: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the detection stage has run over everything committed (its findings for
/// `user` settle), by posting a marker and waiting for the marker's own finding.
async fn settle(server: &Server, marker_user: &str) {
    let events = (0..5)
        .map(|i| failure(marker_user, "192.0.2.250", 3000 + i).1)
        .collect();
    post(server, events).await;
    findings_until(
        server,
        PER_USER,
        &format!("actor.user_id={marker_user}"),
        |f| !f.is_empty(),
    )
    .await;
}

#[tokio::test]
async fn five_failed_logins_make_one_finding_that_repeats_update() {
    let (_dir, server) = Server::start_fresh();
    let alice: Vec<(String, Value)> = (0..7)
        .map(|i| failure("alice", &format!("10.0.0.{i}"), i * 20))
        .collect();
    let bob: Vec<(String, Value)> = (0..4)
        .map(|i| failure("bob", &format!("10.0.1.{i}"), i * 20))
        .collect();
    // Four for bob: one short of the threshold.
    post(
        &server,
        alice.iter().chain(&bob).map(|(_, e)| e.clone()).collect(),
    )
    .await;
    let found = findings_until(&server, PER_USER, "actor.user_id=alice", |f| {
        f.first().is_some_and(|f| f["count"] == 3)
    })
    .await;
    assert_eq!(found.len(), 1, "repeats fold into one finding: {found:?}");
    let finding = &found[0];
    assert_eq!(finding["status"], "open");
    assert_eq!(finding["severity"], "high");
    assert_eq!(finding["first_seen"], "2026-03-01T10:01:20Z");
    assert_eq!(finding["last_seen"], "2026-03-01T10:02:00Z");
    assert!(
        finding["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("attack.t1110"))
    );
    let evidence: Vec<&str> = finding["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (id, _) in &alice {
        assert!(
            evidence.contains(&id.as_str()),
            "{id} missing from {evidence:?}"
        );
    }
    settle(&server, "marker").await;
    let bobs = findings_until(&server, PER_USER, "actor.user_id=bob", |_| true).await;
    assert!(bobs.is_empty(), "four failures are not five: {bobs:?}");

    // The event shows what it triggered; another event shows nothing.
    let fifth = server
        .get_ok(&format!("/api/v1/events/{}?include=findings", alice[4].0))
        .await;
    let triggered = fifth["findings"].as_array().unwrap();
    assert!(
        triggered.iter().any(|f| f["id"] == finding["id"]),
        "{fifth}"
    );
    let bobs_event = server
        .get_ok(&format!("/api/v1/events/{}?include=findings", bob[0].0))
        .await;
    assert_eq!(bobs_event["findings"], json!([]));
    let plain = server
        .get_ok(&format!("/api/v1/events/{}", alice[4].0))
        .await;
    assert!(plain.get("findings").is_none());
    let one = server
        .get_ok(&format!(
            "/api/v1/findings/{}",
            finding["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one["id"], finding["id"]);
}

#[tokio::test]
async fn findings_are_triaged_and_a_resolved_one_is_not_reopened_by_new_firings() {
    let (_dir, server) = Server::start_fresh();
    post(
        &server,
        (0..5).map(|i| failure("carol", "10.0.0.9", i).1).collect(),
    )
    .await;
    let found = findings_until(&server, PER_USER, "actor.user_id=carol", |f| !f.is_empty()).await;
    let id = found[0]["id"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let patch = |key: String, body: Value| {
        let req = http
            .patch(format!("{}/api/v1/findings/{id}", server.url))
            .bearer_auth(key)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let reader = server.create_key("read");
    let (status, body) = patch(
        reader.clone(),
        json!({"status": "acknowledged", "by": "dana"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert!(
        body["status_by"]
            .as_str()
            .unwrap()
            .starts_with("dana (key "),
        "{body}"
    );
    assert!(body["status_at"].is_string());

    let (status, body) = patch(reader.clone(), json!({"status": "closed"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("closed")
    );
    let (status, _) = patch(reader.clone(), json!({"state": "resolved"})).await;
    assert_eq!(status, 400);
    let (status, _) = patch(server.create_key("ingest"), json!({"status": "resolved"})).await;
    assert_eq!(status, 403);
    let (status, _) = server
        .get(
            Some(&reader),
            &format!("/api/v1/findings/{}", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .get(Some(&reader), "/api/v1/findings?status=bogus")
        .await;
    assert_eq!(status, 400, "{body}");

    // Acknowledged still gathers firings; resolved does not.
    post(&server, vec![failure("carol", "10.0.0.9", 6).1]).await;
    findings_until(&server, PER_USER, "actor.user_id=carol", |f| {
        f.len() == 1 && f[0]["count"] == 2
    })
    .await;
    let (status, body) = patch(reader.clone(), json!({"status": "resolved"})).await;
    assert_eq!((status, &body["status"]), (200, &json!("resolved")));
    post(&server, vec![failure("carol", "10.0.0.9", 7).1]).await;
    let both = findings_until(&server, PER_USER, "actor.user_id=carol", |f| f.len() == 2).await;
    assert_eq!(both[0]["status"], "open", "the newest first: {both:?}");
    let (status, body) = patch(reader.clone(), json!({"status": "open"})).await;
    assert_eq!(status, 409, "a newer finding holds the group: {body}");
    let resolved = server
        .get_ok(&format!(
            "/api/v1/findings?status=resolved&rule_id={PER_USER}"
        ))
        .await;
    assert_eq!(resolved["findings"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn correlation_windows_survive_a_restart_and_a_crash_without_doubling_findings() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    // Three failures, a clean stop, two more after: the window carried over.
    post(
        &server,
        (0..3).map(|i| failure("erin", "10.0.0.5", i).1).collect(),
    )
    .await;
    settle(&server, "marker-1").await;
    assert!(server.terminate().success());
    server = Server::start(dir.path());
    post(
        &server,
        (3..5).map(|i| failure("erin", "10.0.0.5", i).1).collect(),
    )
    .await;
    findings_until(&server, PER_USER, "actor.user_id=erin", |f| !f.is_empty()).await;

    // A crash right after a finding: the restart replays the events, rebuilds the
    // windows, and records nothing twice.
    post(
        &server,
        (0..5).map(|i| failure("frank", "10.0.0.6", i).1).collect(),
    )
    .await;
    findings_until(&server, PER_USER, "actor.user_id=frank", |f| !f.is_empty()).await;
    post(
        &server,
        (0..3).map(|i| failure("gina", "10.0.0.7", i).1).collect(),
    )
    .await;
    settle(&server, "marker-2").await;
    server.kill();
    server = Server::start(dir.path());
    settle(&server, "marker-3").await;
    let frank = findings_until(&server, PER_USER, "actor.user_id=frank", |_| true).await;
    assert_eq!(frank.len(), 1, "{frank:?}");
    assert_eq!(
        frank[0]["count"], 1,
        "replayed events are not counted again"
    );
    post(
        &server,
        (3..5).map(|i| failure("gina", "10.0.0.7", i).1).collect(),
    )
    .await;
    let gina = findings_until(&server, PER_USER, "actor.user_id=gina", |f| !f.is_empty()).await;
    assert_eq!(gina[0]["count"], 1);
}

/// A failed login by `user` from `ip` at `at`, as each seed's sender writes it.
fn seed_failure(shape: &str, user: &str, ip: &str, at: OffsetDateTime) -> Value {
    let iso = at.format(&Rfc3339).unwrap();
    match shape {
        // The collector's emitter: user.login with success false.
        "collector" => json!({
            "id": uuid::Uuid::new_v4().to_string(), "eventType": "user.login",
            "eventData": {"userId": user, "sourceIp": ip, "action": "login", "success": false, "reason": "invalid password"},
            "context": {"correlationId": "req-1", "timestamp": iso, "source": "auth-service", "version": "1.0.0"},
            "metadata": {"severity": "info", "source": "auth-service", "version": "1.0.0"},
            "timestamp": iso, "correlationId": "req-1", "userId": user, "sourceIp": ip, "severity": "info",
        }),
        // An OPMAS agent: type AUTH, the result in data, Python's naive UTC isoformat().
        "opmas" => json!({
            "id": uuid::Uuid::new_v4().to_string(), "agent_id": "sshd-watch-1", "type": "AUTH",
            "data": {"user": user, "src_ip": ip, "action": "login", "status": "failed", "method": "password"},
            "timestamp": iso.trim_end_matches('Z'),
        }),
        // The batched service's logEvent: no id, no time (the receipt time stands).
        "batched" => json!({
            "type": "AUTH_LOGIN_FAILURE", "source": "WEB",
            "details": {"username": user, "ipAddress": ip, "userAgent": "Example Browser/1.0", "reason": "invalid password"},
            "priority": "MEDIUM",
        }),
        "canonical" => json!({
            "id": uuid::Uuid::new_v4().to_string(), "type": "auth.login.failure", "time": iso,
            "actor": {"user_id": user, "ip": ip},
        }),
        other => panic!("no shape {other}"),
    }
}

/// The default pack counts failed logins by category and outcome, not by type name: six
/// failed logins for one user from one address within a minute make the brute-force
/// findings whichever seed shape they came in.
#[tokio::test]
async fn brute_force_is_found_in_every_seed_shape() {
    let (_dir, server) = Server::start_fresh();
    let shapes = ["collector", "opmas", "batched", "canonical"];
    let start = OffsetDateTime::now_utc() - time::Duration::seconds(40);
    let who = |n: usize| {
        (
            format!("{}-victim", shapes[n]),
            format!("198.51.100.{}", n + 1),
        )
    };
    for (n, shape) in shapes.iter().enumerate() {
        let (user, ip) = who(n);
        let events: Vec<Value> = (0..6)
            .map(|i| seed_failure(shape, &user, &ip, start + time::Duration::seconds(i * 5)))
            .collect();
        let (status, body) = server.post_json(&Value::Array(events)).await;
        assert_eq!(status, 202, "{shape}: {body}");
        assert_eq!(
            body["stored"], 6,
            "{shape}: every failure stored, none folded: {body}"
        );
    }
    for (n, shape) in shapes.iter().enumerate() {
        let (user, ip) = who(n);
        // Five in the window fire on the fifth and again on the sixth: one finding, count 2.
        let twice = |f: &[Value]| f.first().is_some_and(|f| f["count"] == 2);
        let per_user =
            findings_until(&server, PER_USER, &format!("actor.user_id={user}"), twice).await;
        assert_eq!(per_user.len(), 1, "{shape}: {per_user:?}");
        assert_eq!(per_user[0]["severity"], "high", "{shape}");
        assert_eq!(
            per_user[0]["evidence"].as_array().map(Vec::len),
            Some(6),
            "{shape}: all six failures are its evidence: {per_user:?}"
        );
        let per_address =
            findings_until(&server, PER_ADDRESS, &format!("actor.ip={ip}"), twice).await;
        assert_eq!(per_address.len(), 1, "{shape}: {per_address:?}");
    }
}

const SETPOINT_RULE: &str = "title: Oven setpoint above 300\nid: oven-hot\nlogsource: {product: evident}\ndetection:\n  sel:\n    type: control.setpoint.change\n    data.setpoint|gt: 300\n  condition: sel\nlevel: high\n";

fn setpoint(value: u32) -> Value {
    json!({"type": "control.setpoint.change", "severity": "info",
           "data": {"setpoint": value, "station_id": "OVEN-1"}})
}

async fn send_rule(
    server: &Server,
    method: reqwest::Method,
    key: &str,
    id: &str,
    body: &str,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{}/api/v1/rules/{id}", server.url))
        .bearer_auth(key)
        .header("content-type", "application/yaml")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rules_are_listed_added_refused_deleted_and_reloaded_from_their_directory() {
    let (_dir, server) = Server::start_fresh();
    let listed = server.get_ok("/api/v1/rules").await;
    let ids: Vec<&str> = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&PER_USER), "{listed}");
    assert_eq!(listed["problems"], json!([]));
    let one = server.get_ok(&format!("/api/v1/rules/{PER_USER}")).await;
    assert_eq!(one["kind"], "correlation");
    assert!(one["yaml"].as_str().unwrap().contains("timespan: 5m"));

    let reader = server.create_key("read");
    let put = reqwest::Method::PUT;
    let (status, _) = send_rule(&server, put.clone(), &reader, "oven-hot", SETPOINT_RULE).await;
    assert_eq!(status, 403);
    let broken = SETPOINT_RULE.replace("condition: sel", "condition: sel and missing");
    let (status, body) = send_rule(&server, put.clone(), &server.key, "oven-hot", &broken).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("oven-hot.yml line "), "{message}");
    assert!(message.contains("missing"), "{message}");
    let (status, body) =
        send_rule(&server, put.clone(), &server.key, "oven-hot", SETPOINT_RULE).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["title"], "Oven setpoint above 300");

    post(&server, vec![setpoint(250), setpoint(320)]).await;
    let fired = findings_until(&server, "oven-hot", "", |f| !f.is_empty()).await;
    assert_eq!(
        fired[0]["count"], 1,
        "only the setpoint above 300: {fired:?}"
    );

    let delete = reqwest::Method::DELETE;
    let (status, _) = send_rule(&server, delete.clone(), &server.key, "oven-hot", "").await;
    assert_eq!(status, 204);
    let (status, _) = send_rule(&server, delete.clone(), &server.key, "oven-hot", "").await;
    assert_eq!(status, 404);
    let (status, body) = send_rule(&server, delete, &server.key, PER_USER, "").await;
    assert_eq!(status, 409, "shares its file: {body}");
    post(&server, vec![setpoint(330)]).await;
    settle(&server, "marker").await;
    let after = findings_until(&server, "oven-hot", "", |_| true).await;
    assert_eq!(after[0]["count"], 1, "a deleted rule fires no more");

    // A file dropped into the rules directory is picked up on its own.
    let hotter = SETPOINT_RULE
        .replace("oven-hot", "oven-hotter")
        .replace("above 300", "above 400")
        .replace("gt: 300", "gt: 400");
    std::fs::write(server.dir.join("rules").join("hotter.yml"), hotter).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    for attempt in 0.. {
        // Each one different, so deduplication does not fold the repeats.
        let mut event = setpoint(450);
        event["data"]["attempt"] = json!(attempt);
        post(&server, vec![event]).await;
        let page = server.get_ok("/api/v1/findings?rule_id=oven-hotter").await;
        if !page["findings"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the new file was never loaded");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_backtest_runs_a_rule_over_stored_events_without_recording() {
    let (_dir, server) = Server::start_fresh();
    let ivy: Vec<(String, Value)> = (0..6).map(|i| failure("ivy", "10.0.3.1", i * 10)).collect();
    post(&server, ivy.iter().map(|(_, e)| e.clone()).collect()).await;
    settle(&server, "marker").await;
    let before = findings_until(&server, PER_USER, "actor.user_id=ivy", |f| !f.is_empty()).await;
    let backtest = |query: &str| {
        let url = format!("{}/api/v1/rules/{PER_USER}/backtest?{query}", server.url);
        let key = server.key.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, report) = backtest("from=2026-03-01T10:00:00Z&to=2026-03-01T10:01:00Z").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["events"], 6, "{report}");
    assert_eq!(report["fired"], 2, "the fifth and sixth failure: {report}");
    assert_eq!(report["firings"][0]["event_id"], ivy[4].0.as_str());
    assert_eq!(report["firings"][0]["group_key"], "actor.user_id=ivy");
    assert_eq!(
        report["firings"][0]["personal"]["revealed"],
        json!(["actor.user_id"])
    );
    // A reader without the personal-data permission sees the pseudonym.
    let reader = server.create_key("read");
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/rules/{PER_USER}/backtest?from=2026-03-01T10:00:00Z&to=2026-03-01T10:01:00Z",
            server.url
        ))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    let hidden: Value = resp.json().await.unwrap();
    assert_eq!(
        hidden["firings"][0]["group_key"],
        server.group_key("actor.user_id=ivy").as_str(),
        "{hidden}"
    );
    assert!(!hidden.to_string().contains("=ivy"), "{hidden}");
    assert_eq!(report["truncated"], false);
    // The default range is the last day: these events are older.
    let (status, report) = backtest("").await;
    assert_eq!((status, &report["fired"]), (200, &json!(0)), "{report}");
    let (status, _) = backtest("from=soon").await;
    assert_eq!(status, 400);
    let after = findings_until(&server, PER_USER, "actor.user_id=ivy", |_| true).await;
    assert_eq!(
        before[0]["count"], after[0]["count"],
        "a backtest records nothing"
    );
    let (status, _) = reqwest::Client::new()
        .post(format!("{}/api/v1/rules/nope/backtest", server.url))
        .bearer_auth(&server.key)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 404);
}

//! The live stream over real WebSocket and SSE connections to a real server: the
//! protocol's messages, every filter, findings, authentication and facility scope, resume
//! with nothing missing and nothing twice, and a stuck client told what it missed while
//! other clients and ingest carry on.

use crate::common::Server;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/api/v1/stream?query` with `key` as a bearer key (none: no header).
async fn connect(server: &Server, key: Option<&str>, query: &str) -> Result<Socket, u16> {
    let url = format!(
        "{}/api/v1/stream?{query}",
        server.url.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("cannot connect: {e}"),
    }
}

/// Opens `/api/v1/stream?query` with a receive buffer of a few kilobytes, as a client
/// on a slow link would have: the server meets its back-pressure soon.
async fn connect_slow(server: &Server, query: &str) -> Socket {
    let addr: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/api/v1/stream?{query}");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.key).parse().unwrap(),
    );
    let (socket, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    socket
}

/// The next JSON message (skipping heartbeats), or `None` after `wait` without one.
async fn next_within(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??;
        match message.expect("a message") {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).expect("JSON text");
                if value["type"] != "heartbeat" {
                    return Some(value);
                }
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn next(socket: &mut Socket) -> Value {
    next_within(socket, Duration::from_secs(10))
        .await
        .expect("a message within 10 s")
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

fn event(kind: &str, severity: &str, extra: Value) -> Value {
    let mut e = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": kind,
        "severity": severity,
        "source": "stream-test",
        // Distinct, so no two are folded together as repeats.
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    if let (Value::Object(e), Value::Object(extra)) = (&mut e, extra) {
        e.extend(extra);
    }
    e
}

async fn post(server: &Server, events: Vec<Value>) {
    let (status, body) = server.post_json(&Value::Array(events)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

/// Reads security events until `want` ids have arrived (other messages are returned too).
async fn events_until(socket: &mut Socket, want: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got
        .iter()
        .filter(|m: &&Value| m["type"] == "security_event")
        .count()
        < want
    {
        got.push(next(socket).await);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_speaks_the_seed_protocol_and_every_filter_selects() {
    let (_dir, server) = Server::start_fresh();
    let mut ws = connect(&server, Some(&server.key), "").await.unwrap();
    let hello = next(&mut ws).await;
    assert_eq!(hello["type"], "connection_established");
    assert!(hello["client_id"].as_str().is_some_and(|c| !c.is_empty()));

    // No filter yet: everything comes, each with its commit seq.
    let first = event("station.operation", "info", json!({"facility": "plant-a"}));
    post(&server, vec![first.clone()]).await;
    let got = next(&mut ws).await;
    assert_eq!(got["type"], "security_event");
    assert_eq!(id(&got["event"]), id(&first));
    let seq = got["seq"].as_i64().unwrap();
    assert!(seq > 0);

    // One subscribe per filter: of two events, only the matching one comes through
    // (the other is sent first, so a broken filter would show it).
    let cases = [
        (
            json!({"type": "auth.*"}),
            json!({"type": "auth.login.failure"}),
            json!({"type": "station.operation"}),
        ),
        (
            json!({"eventType": "auth.login.failure"}),
            json!({"type": "auth.login.failure"}),
            json!({"type": "auth.login.success"}),
        ),
        (
            json!({"category": "manufacturing"}),
            json!({"type": "quality.check"}),
            json!({"type": "auth.login.success"}),
        ),
        (
            json!({"min_severity": "high"}),
            json!({"severity": "critical"}),
            json!({"severity": "medium"}),
        ),
        (
            json!({"user": "alice"}),
            json!({"actor": {"user_id": "alice"}}),
            json!({"actor": {"user_id": "bob"}}),
        ),
        (
            json!({"agent": "plc-gw-1"}),
            json!({"agent_id": "plc-gw-1"}),
            json!({"agent_id": "plc-gw-2"}),
        ),
        (
            json!({"facility": "plant-b"}),
            json!({"facility": "plant-b"}),
            json!({"facility": "plant-a"}),
        ),
        (
            json!({"source_ip": "10.20.3.4"}),
            json!({"actor": {"ip": "10.20.3.4"}}),
            json!({"actor": {"ip": "10.21.3.4"}}),
        ),
        (
            json!({"data.station.line": 3}),
            json!({"data": {"station": {"line": 3}}}),
            json!({"data": {"station": {"line": 4}}}),
        ),
    ];
    for (filters, yes, no) in cases {
        send(&mut ws, json!({"type": "subscribe", "filters": filters})).await;
        let updated = next(&mut ws).await;
        assert_eq!(updated["type"], "subscription_updated", "{updated}");
        assert_eq!(updated["subscribed"], true);
        let mut base = json!({"type": "station.operation", "severity": "medium"});
        let (mut miss, mut hit) = (base.clone(), base.take());
        for (target, fields) in [(&mut miss, no), (&mut hit, yes)] {
            target
                .as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            target["id"] = json!(uuid::Uuid::new_v4().to_string());
            target["correlation_id"] = json!(uuid::Uuid::new_v4().to_string());
        }
        post(&server, vec![miss.clone()]).await;
        post(&server, vec![hit.clone()]).await;
        let got = next(&mut ws).await;
        assert_eq!(got["type"], "security_event");
        assert_eq!(
            id(&got["event"]),
            id(&hit),
            "filter {filters}: got {} instead",
            got["event"]
        );
        assert!(got["seq"].as_i64().unwrap() > seq);
    }

    // Mistakes are answered, and the subscription stays as it was.
    send(
        &mut ws,
        json!({"type": "subscribe", "filters": {"colour": "red"}}),
    )
    .await;
    let error = next(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "invalid_filter");
    assert!(
        error["message"].as_str().unwrap().contains("colour"),
        "{error}"
    );
    // Addresses are sealed by default: a network cannot match their pseudonyms.
    send(
        &mut ws,
        json!({"type": "subscribe", "filters": {"source_ip": "10.0.0.0/8"}}),
    )
    .await;
    let error = next(&mut ws).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("filter by one address"),
        "{error}"
    );
    send(&mut ws, json!({"type": "dance"})).await;
    assert_eq!(next(&mut ws).await["code"], "invalid_message");
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next(&mut ws).await["code"], "invalid_message");

    // Unsubscribed, nothing comes; subscribed again, the next event does.
    send(&mut ws, json!({"type": "unsubscribe"})).await;
    let updated = next(&mut ws).await;
    assert_eq!(
        (updated["type"].clone(), updated["subscribed"].clone()),
        (json!("subscription_updated"), json!(false))
    );
    let quiet = event("station.operation", "high", json!({}));
    post(&server, vec![quiet.clone()]).await;
    send(&mut ws, json!({"type": "subscribe", "filters": {}})).await;
    assert_eq!(next(&mut ws).await["type"], "subscription_updated");
    let marker = event("station.operation", "high", json!({}));
    post(&server, vec![marker.clone()]).await;
    let got = next(&mut ws).await;
    assert_eq!(
        id(&got["event"]),
        id(&marker),
        "the event sent while unsubscribed stays away: {got}"
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_with_since_seq_gets_what_it_missed_once() {
    let (_dir, server) = Server::start_fresh();
    let mut ws = connect(&server, Some(&server.key), "type=resume.*")
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "connection_established");
    post(&server, vec![event("resume.first", "info", json!({}))]).await;
    let seen = next(&mut ws).await;
    let seen_seq = seen["seq"].as_i64().unwrap();
    drop(ws);

    // While away: 30 matching events in three requests, and others that do not match.
    let mut missed = Vec::new();
    for round in 0..3 {
        let batch: Vec<Value> = (0..10)
            .map(|i| {
                event(
                    "resume.missed",
                    "info",
                    json!({"data": {"n": round * 10 + i}}),
                )
            })
            .collect();
        missed.extend(batch.iter().map(|e| id(e).to_owned()));
        post(&server, batch).await;
        post(&server, vec![event("other.kind", "info", json!({}))]).await;
    }
    let mut ws = connect(
        &server,
        Some(&server.key),
        &format!("type=resume.*&since_seq={seen_seq}"),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await["type"], "connection_established");
    let live = event("resume.live", "info", json!({}));
    post(&server, vec![live.clone()]).await;
    let got = events_until(&mut ws, 31).await;
    let ids: Vec<&str> = got.iter().map(|m| id(&m["event"])).collect();
    let mut want: Vec<&str> = missed.iter().map(String::as_str).collect();
    want.push(id(&live));
    assert_eq!(
        ids, want,
        "every missed event once, in commit order, then the live one"
    );
    let seqs: Vec<i64> = got.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs rise: {seqs:?}");
    assert!(
        next_within(&mut ws, Duration::from_millis(500))
            .await
            .is_none(),
        "nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_tokens_open_the_stream_and_a_facility_key_sees_only_its_facility() {
    let (_dir, server) = Server::start_fresh();
    assert_eq!(connect(&server, None, "").await.err(), Some(401));
    assert_eq!(
        connect(&server, Some("evk_wrong"), "").await.err(),
        Some(401)
    );
    let ingest = server.create_key("ingest");
    assert_eq!(connect(&server, Some(&ingest), "").await.err(), Some(403));
    assert_eq!(
        connect(&server, Some(&server.key), "min_severity=huge")
            .await
            .err(),
        Some(400),
        "a bad filter is refused before the upgrade"
    );
    assert_eq!(
        connect(&server, None, "token=est_forged").await.err(),
        Some(401)
    );

    let plant_a = server.create_key_with("read", &["--facility", "plant-a"]);
    let http = reqwest::Client::new();
    let answer: Value = http
        .post(format!("{}/api/v1/stream/token", server.url))
        .bearer_auth(&plant_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["token"].as_str().unwrap();
    assert_eq!(answer["expires_in"], 60);
    let mut scoped = connect(&server, None, &format!("token={token}"))
        .await
        .unwrap();
    assert_eq!(next(&mut scoped).await["type"], "connection_established");
    let mut admin = connect(&server, Some(&server.key), "").await.unwrap();
    assert_eq!(next(&mut admin).await["type"], "connection_established");

    let b = event("station.operation", "info", json!({"facility": "plant-b"}));
    let a = event("station.operation", "info", json!({"facility": "plant-a"}));
    post(&server, vec![b.clone(), a.clone()]).await;
    assert_eq!(
        id(&next(&mut scoped).await["event"]),
        id(&a),
        "plant B's event is not shown"
    );
    assert_eq!(id(&next(&mut admin).await["event"]), id(&b));
    assert_eq!(id(&next(&mut admin).await["event"]), id(&a));

    // Findings: five failed logins make a brute-force finding, told to both in plant A,
    // to neither the plant-A key for plant B.
    let failures = |user: &str, facility: &str| -> Vec<Value> {
        (0..5)
            .map(|i| {
                event(
                    "auth.login.failure",
                    "warning",
                    json!({"facility": facility, "outcome": "failure",
                           "actor": {"user_id": user, "ip": format!("10.9.9.{i}")}}),
                )
            })
            .collect()
    };
    post(&server, failures("mallory", "plant-b")).await;
    post(&server, failures("trudy", "plant-a")).await;
    let finding_of = |messages: &[Value]| -> Vec<Value> {
        messages
            .iter()
            .filter(|m| m["type"] == "finding")
            .map(|m| m["finding"].clone())
            .collect()
    };
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !finding_of(&seen).iter().any(|f| f["facility"] == "plant-a") {
        assert!(
            Instant::now() < deadline,
            "no plant A finding on the stream: {seen:?}"
        );
        seen.push(next(&mut scoped).await);
    }
    let scoped_findings = finding_of(&seen);
    assert!(
        scoped_findings.iter().all(|f| f["facility"] == "plant-a"),
        "{scoped_findings:?}"
    );
    assert!(scoped_findings[0]["rule_id"].as_str().is_some());
    assert!(
        seen.iter()
            .filter(|m| m["type"] == "security_event")
            .all(|m| m["event"]["facility"] == "plant-a")
    );
    // Personal values in group keys: pseudonyms for a key without the personal-data
    // permission, the clear value for the admin key, as the findings API shows them.
    assert!(
        scoped_findings
            .iter()
            .all(|f| f["group_key"].as_str().unwrap().contains("=ps_")),
        "{scoped_findings:?}"
    );
    let mut admin_seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !finding_of(&admin_seen)
        .iter()
        .any(|f| f["group_key"] == "actor.user_id=trudy")
    {
        assert!(
            Instant::now() < deadline,
            "admin never saw trudy's finding in the clear: {:?}",
            finding_of(&admin_seen)
        );
        admin_seen.push(next(&mut admin).await);
    }

    // A status change is told too, with who made it.
    let finding = &scoped_findings[0];
    let changed = http
        .patch(format!("{}/api/v1/findings/{}", server.url, id(finding)))
        .bearer_auth(&plant_a)
        .json(&json!({"status": "acknowledged", "by": "operator ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = next(&mut scoped).await;
        if m["type"] == "finding" && m["finding"]["status"] == "acknowledged" {
            assert!(
                m["finding"]["status_by"]
                    .as_str()
                    .unwrap()
                    .contains("operator ann"),
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < deadline);
    }
}

/// Reads SSE messages from `response` until `done` says so: `(event, id, data)`.
async fn sse_until(
    response: &mut reqwest::Response,
    done: impl Fn(&[(String, Option<String>, Value)]) -> bool,
) -> Vec<(String, Option<String>, Value)> {
    let mut got = Vec::new();
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(&got) {
        assert!(Instant::now() < deadline, "SSE so far: {got:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("SSE data within 10 s")
            .unwrap()
            .expect("the SSE response goes on");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut name, mut id, mut data) = (String::from("message"), None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() && name != "heartbeat" {
                got.push((name, id, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_filters_by_query_and_resumes_from_last_event_id() {
    let (_dir, server) = Server::start_fresh();
    let http = reqwest::Client::new();
    let open = |last: Option<String>| {
        let mut request = http
            .get(format!(
                "{}/api/v1/stream/sse?type=sse.kept&min_severity=medium",
                server.url
            ))
            .bearer_auth(&server.key);
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        request.send()
    };
    let bad = http
        .get(format!("{}/api/v1/stream/sse?since_seq=-3", server.url))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("since_seq"),
        "{body}"
    );

    let mut response = open(None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let kept = event("sse.kept", "high", json!({}));
    post(
        &server,
        vec![
            event("sse.dropped", "high", json!({})),
            event("sse.kept", "low", json!({})),
            kept.clone(),
        ],
    )
    .await;
    let got = sse_until(&mut response, |g| !g.is_empty()).await;
    assert_eq!(got[0].0, "security_event");
    assert_eq!(id(&got[0].2["event"]), id(&kept));
    let last_id = got[0]
        .1
        .clone()
        .expect("event messages carry their seq as the id");
    assert_eq!(last_id, got[0].2["seq"].to_string());
    drop(response);

    let missed: Vec<Value> = (0..5)
        .map(|_| event("sse.kept", "critical", json!({})))
        .collect();
    post(&server, missed.clone()).await;
    let mut response = open(Some(last_id)).await.unwrap();
    let got = sse_until(&mut response, |g| g.len() >= 5).await;
    let ids: Vec<&str> = got.iter().map(|(_, _, m)| id(&m["event"])).collect();
    let want: Vec<&str> = missed.iter().map(id).collect();
    assert_eq!(ids, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_is_told_what_it_missed_while_others_and_ingest_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    std::fs::write(
        &config,
        "version: 1\nstream:\n  client_buffer: 1024\n  send_timeout_secs: 30\n  max_subscribers: 3\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let mut stuck = connect_slow(&server, "type=flood.*").await;
    assert_eq!(next(&mut stuck).await["type"], "connection_established");
    let mut fast = connect(&server, Some(&server.key), "type=flood.*")
        .await
        .unwrap();
    assert_eq!(next(&mut fast).await["type"], "connection_established");

    // Big events, so the stuck client's socket buffers fill long before the end.
    let padding = "x".repeat(8000);
    let total = 6000;
    let per_request = 100;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < total {
            let m = next(&mut fast).await;
            assert_eq!(
                m["type"], "security_event",
                "the fast client misses nothing: {m}"
            );
            got.push(m);
        }
        (got, fast)
    });
    for round in 0..(total / per_request) {
        let batch: Vec<Value> = (0..per_request)
            .map(|i| {
                event(
                    "flood.item",
                    "info",
                    json!({"data": {"n": round * per_request + i, "pad": padding}}),
                )
            })
            .collect();
        post(&server, batch).await;
    }
    let (fast_got, _fast) = match tokio::time::timeout(Duration::from_secs(60), reader).await {
        Ok(Ok(done)) => done,
        other => panic!(
            "the fast client did not get every event ({other:?}); server log:\n{}",
            crate::common::server_log(dir.path())
        ),
    };
    let fast_seqs: Vec<i64> = fast_got
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();

    // Now the stuck client reads: what it got plus what it was told it missed is all.
    let mut received = Vec::new();
    let mut lagged = Vec::new();
    while let Some(m) = next_within(&mut stuck, Duration::from_secs(3)).await {
        match m["type"].as_str().unwrap() {
            "security_event" => received.push(m["seq"].as_i64().unwrap()),
            "lagged" => lagged.push(m),
            other => panic!("unexpected {other}: {m}"),
        }
    }
    assert!(!lagged.is_empty(), "the stuck client was told it lagged");
    let missed: u64 = lagged.iter().map(|m| m["missed"].as_u64().unwrap()).sum();
    assert_eq!(
        received.len() as u64 + missed,
        total as u64,
        "received {} + missed {missed} = all {total}",
        received.len()
    );
    // The first lagged notice says where the gap began: the next event it would have had.
    let first_gap = lagged[0]["resume_from_seq"].as_i64().unwrap();
    let before: Vec<i64> = received
        .iter()
        .copied()
        .filter(|s| *s < first_gap)
        .collect();
    assert_eq!(
        before,
        fast_seqs[..before.len()],
        "nothing skipped before the gap"
    );
    // Resuming from there gives the missing events back.
    let mut again = connect(
        &server,
        Some(&server.key),
        &format!("type=flood.*&since_seq={}", first_gap - 1),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut again).await["type"], "connection_established");
    let back = events_until(&mut again, 1).await;
    assert_eq!(back[0]["seq"].as_i64().unwrap(), first_gap);

    // Three streams are open, the configured most: a fourth is refused, on either way in.
    assert_eq!(
        connect(&server, Some(&server.key), "").await.err(),
        Some(503)
    );
    let sse = reqwest::Client::new()
        .get(format!("{}/api/v1/stream/sse", server.url))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 503);
    let body: Value = sse.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream.max_subscribers"),
        "{body}"
    );
    drop(again);
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect(&server, Some(&server.key), "").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "a closed stream gives its place back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free port on 127.0.0.1, for a server that must come back on the same address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evident_tail_follows_resumes_after_a_restart_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start_on(dir.path(), &listen, &[]);
    let mut tail = std::process::Command::new(crate::common::BIN)
        .args([
            "tail",
            "--format",
            "json",
            "--type",
            "tail.*",
            "--url",
            &server.url,
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    // The next `n` events it prints (a notice that the server is stopping may come too).
    let read = |n: usize| -> Vec<Value> {
        let mut got = Vec::new();
        while got.len() < n {
            let line = lines
                .recv_timeout(Duration::from_secs(20))
                .expect("a line from evident tail within 20 s");
            let message: Value = serde_json::from_str(&line).unwrap();
            match message["type"].as_str() {
                Some("security_event") => got.push(message),
                Some("closed") => assert_eq!(message["reason"], "the service is shutting down"),
                _ => panic!("unexpected: {message}"),
            }
        }
        got
    };
    // It is connected once an event posted now reaches it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        post(&server, vec![event("tail.probe", "info", json!({}))]).await;
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
            break serde_json::from_str::<Value>(&line).unwrap();
        }
        assert!(Instant::now() < deadline, "evident tail printed nothing");
    };
    assert_eq!(first["type"], "security_event");
    while lines.recv_timeout(Duration::from_millis(300)).is_ok() {}

    let before: Vec<Value> = (0..3)
        .map(|_| event("tail.before", "info", json!({})))
        .collect();
    post(&server, vec![event("other.kind", "info", json!({}))]).await;
    post(&server, before.clone()).await;
    let got = read(3);
    assert_eq!(
        got.iter().map(|m| id(&m["event"])).collect::<Vec<_>>(),
        before.iter().map(id).collect::<Vec<_>>()
    );

    // The server goes away and comes back on the same address; events sent in between
    // and after are printed once each.
    assert!(server.terminate().success());
    let mut server = Server::start_on(dir.path(), &listen, &[]);
    let after: Vec<Value> = (0..2)
        .map(|_| event("tail.after", "info", json!({})))
        .collect();
    post(&server, after.clone()).await;
    let got = read(2);
    assert_eq!(
        got.iter().map(|m| id(&m["event"])).collect::<Vec<_>>(),
        after.iter().map(id).collect::<Vec<_>>(),
        "resumed after the last event printed"
    );
    assert!(
        lines.recv_timeout(Duration::from_millis(500)).is_err(),
        "nothing printed twice"
    );

    // Ctrl-C stops it cleanly.
    std::process::Command::new("kill")
        .args(["-INT", &tail.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tail.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "evident tail did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");

    // A refused stream is an error, not a retry loop.
    let out = std::process::Command::new(crate::common::BIN)
        .args([
            "tail",
            "--min-severity",
            "huge",
            "--url",
            &server.url,
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("min_severity"), "{stderr}");
    server.terminate();
}

//! Every kind of bad input gets a clear 4xx, never a 5xx or a hang, and never costs valid events.

use super::common::Server;
use serde_json::{Value, json};

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn whole_body_problems_get_named_4xx() {
    let (_dir, server) = Server::start_fresh();
    let k = Some(server.key.as_str());
    let json_ct = Some("application/json");

    let (s, b) = server.post(k, json_ct, "this is not json").await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    assert!(message(&b).contains("not valid JSON"), "{b}");

    let (s, b) = server.post(k, Some("text/plain"), "{}").await;
    assert_eq!(s, 415);
    assert!(message(&b).contains("application/x-ndjson"), "{b}");

    let (s, b) = server.post(k, json_ct, "[]").await;
    assert_eq!(s, 400);
    assert!(message(&b).contains("no event"), "{b}");

    let (s, _) = server.post(k, json_ct, "\"just a string\"").await;
    assert_eq!(s, 400);

    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let (s, b) = server.post(k, json_ct, deep).await;
    assert_eq!(s, 400, "{b}");

    // The test server allows 1 MiB bodies and 2000 events per request.
    let huge = format!(
        "{{\"type\":\"a.b\",\"data\":{{\"x\":\"{}\"}}}}",
        "y".repeat(1_100_000)
    );
    let (s, b) = server.post(k, json_ct, huge).await;
    assert_eq!(s, 413, "{b}");
    assert!(message(&b).contains("1048576"), "{b}");

    let many = Value::Array(vec![json!({"type": "a.b"}); 2001]);
    let (s, b) = server.post(k, json_ct, many.to_string()).await;
    assert_eq!(s, 413);
    assert!(message(&b).contains("2000"), "{b}");
}

#[tokio::test]
async fn bad_events_are_named_and_good_ones_kept() {
    let (_dir, server) = Server::start_fresh();
    let body = json!([
        {"type": "user.login", "actor": {"user_id": "ann"}},
        {"type": "user.login", "severity": "apocalyptic"},
        {"type": "a.b", "data": {"blob": "z".repeat(70_000)}},
        {"type": "a.b", "data": nest(40)},
        {"eventType": "access.denied", "sourceIp": "not-an-ip"},
        {"type": "quality.check", "time": "3020-01-01T00:00:00Z"},
        {"type": "data.access", "mystery": 1},
        {"type": "config.change", "severity": "high"}
    ]);
    let (status, b) = server.post_json(&body).await;
    assert_eq!(status, 202, "{b}");
    assert_eq!(
        (b["stored"].as_u64(), b["rejected"].as_u64()),
        (Some(2), Some(6)),
        "{b}"
    );
    assert!(b["ids"][0].is_string() && b["ids"][7].is_string() && b["ids"][1].is_null());
    let errors = b["errors"].as_array().unwrap();
    let find = |index: u64| {
        errors
            .iter()
            .find(|e| e["index"] == index)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(find(1)["field"], "severity");
    assert!(find(1)["reason"].as_str().unwrap().contains("apocalyptic"));
    assert_eq!(find(2)["field"], "data.blob");
    assert!(
        find(3)["reason"]
            .as_str()
            .unwrap()
            .contains("nested deeper")
    );
    assert_eq!(find(4)["field"], "sourceIp");
    assert_eq!(find(5)["field"], "time");
    assert_eq!(find(6)["field"], "mystery");

    let (status, b) = server
        .post_json(&json!([{"type": "NOT OK"}, {"severity": "high"}]))
        .await;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["code"], "no_valid_events");
    assert_eq!(b["errors"].as_array().unwrap().len(), 2);

    let (status, b) = server
        .post(
            Some(&server.key),
            Some("application/x-ndjson"),
            "{\"type\":\"a.b\"}\n{broken\n",
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(b["errors"][0]["line"], 2, "{b}");

    // Every refused NDJSON line names its line, whatever rule it broke.
    let (status, b) = server
        .post(
            Some(&server.key),
            Some("application/x-ndjson"),
            "{\"type\":\"a.c\"}\n\n{\"type\":\"NOT OK\"}\n{\"type\":\"a.b\",\"severity\":\"loud\"}\n",
        )
        .await;
    assert_eq!(status, 202, "{b}");
    let lines: Vec<&Value> = b["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["line"])
        .collect();
    assert_eq!(lines, [&json!(3), &json!(4)], "{b}");

    let listed = server.get_ok("/api/v1/events?limit=100").await;
    let sent = super::common::sent_events(&listed).count();
    assert_eq!(
        sent, 4,
        "exactly the valid events are stored (besides the service's own records)"
    );
}

#[tokio::test]
async fn bad_query_parameters_and_paths() {
    let (_dir, server) = Server::start_fresh();
    for path in [
        "/api/v1/events?limit=0",
        "/api/v1/events?severity=loud",
        "/api/v1/events?wat=1",
        "/api/v1/events?cursor=abc",
        "/api/v1/events?data.a%27b=1",
        "/api/v1/stats?interval=1s&from=365d",
        "/api/v1/stats?group_by=shoe",
        "/api/v1/events/not-a-uuid",
    ] {
        let (status, body) = server.get(Some(&server.key), path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}");
    }
    let (status, body) = server
        .get(
            Some(&server.key),
            "/api/v1/events/018f9d2e-0000-7000-8000-000000000001",
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = server.get(Some(&server.key), "/api/v2/nothing").await;
    assert_eq!(status, 404);
}

fn nest(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({"n": inner}))
}

#[tokio::test]
async fn a_stalled_body_gets_400_not_a_hang() {
    use std::io::{Read, Write};
    let (_dir, server) = Server::start_fresh();
    let addr = server.url.strip_prefix("http://").unwrap().to_owned();
    let key = server.key.clone();
    let started = std::time::Instant::now();
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        // Promise 1000 bytes, send 10, then go quiet (the test server allows 1 s).
        write!(
            stream,
            "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"type\":\"a"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).ok();
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("could not read the request body"),
        "{response}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "answered by the body timeout"
    );
    let listed = server.get_ok("/api/v1/events").await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn request_bytes_in_flight_are_bounded() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-inflight-mb", "1"]);
    let addr = server.url.strip_prefix("http://").unwrap().to_owned();
    // A slow sender holds 900 KB of the 1 MiB budget...
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 900000\r\n\r\n{{",
        server.key
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // ...so another large request is refused at once, before its body is read.
    let big = format!(
        "{{\"type\":\"a.b\",\"data\":{{\"x\":\"{}\"}}}}\n",
        "y".repeat(200_000)
    );
    let (status, body) = server
        .post(Some(&server.key), Some("application/x-ndjson"), big)
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "overloaded");
    // Small requests still fit, and reads are not counted.
    let (status, _) = server.post_json(&json!({"type": "a.small"})).await;
    assert_eq!(status, 202);
    assert_eq!(server.get(Some(&server.key), "/api/v1/events").await.0, 200);
    drop(slow);
}

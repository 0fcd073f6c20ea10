//! Each accepted input shape round-trips through the real server with the right normalized fields.

use super::common::Server;
use serde_json::{Value, json};

async fn round_trip(server: &Server, event: Value) -> Value {
    let (status, body) = server.post_json(&event).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["stored"], 1, "{body}");
    let id = body["ids"][0].as_str().unwrap().to_owned();
    server.get_ok(&format!("/api/v1/events/{id}")).await
}

#[tokio::test]
async fn seed_shapes_round_trip_normalized() {
    let (_dir, server) = Server::start_fresh();

    let collector = round_trip(&server, json!({
        "id": "6f1c1d4e-8a51-4a8e-9f3e-1c2d3e4f5a6b", "eventType": "permission.change",
        "eventData": {"targetUser": "op_7", "newRole": "supervisor"},
        "context": {"correlationId": "req-456", "sessionId": "sess-789", "userAgent": "Mozilla/5.0", "source": "admin-ui"},
        "metadata": {"severity": "warn", "source": "admin-ui", "version": "1.0.0"},
        "timestamp": "2025-08-28T13:30:00.000Z", "userId": "admin", "sourceIp": "192.168.1.100", "severity": "warn"
    })).await;
    assert_eq!(collector["id"], "6f1c1d4e-8a51-4a8e-9f3e-1c2d3e4f5a6b");
    assert_eq!(collector["type"], "permission.change");
    assert_eq!(collector["category"], "authorization");
    assert_eq!(collector["severity"], "medium");
    assert_eq!(
        collector["actor"],
        json!({"user_id": "admin", "ip": "192.168.1.100", "session_id": "sess-789", "user_agent": "Mozilla/5.0"})
    );
    assert_eq!(collector["correlation_id"], "req-456");
    assert_eq!(collector["source"], "admin-ui");
    assert_eq!(collector["time"], "2025-08-28T13:30:00Z");
    assert_eq!(collector["data"]["newRole"], "supervisor");
    assert!(collector["seq"].as_i64().unwrap() >= 1);

    let opmas = round_trip(&server, json!({
        "id": "3d6f0a52-9a0e-4c62-b1d4-0e8f2b6c1a11", "agent_id": "agent-7", "type": "PROCESS",
        "data": {"pid": 4242, "cmd": "/usr/bin/plc-flash", "user": "svc_mes"}, "timestamp": "2025-08-28T12:00:00.123456"
    })).await;
    assert_eq!(opmas["type"], "process.event");
    assert_eq!(opmas["category"], "process");
    assert_eq!(opmas["agent_id"], "agent-7");
    assert_eq!(opmas["actor"]["user_id"], "svc_mes");
    assert_eq!(opmas["time"], "2025-08-28T12:00:00.123456Z");

    let batched = round_trip(&server, json!({
        "type": "AUTH_LOGIN_FAILURE", "source": "web",
        "details": {"username": "bob", "ipAddress": "10.1.2.3", "reason": "bad password"}, "priority": "HIGH"
    })).await;
    assert_eq!(batched["type"], "auth.login.failure");
    assert_eq!(batched["category"], "authentication");
    assert_eq!(batched["outcome"], "failure");
    assert_eq!(batched["priority"], "high");
    assert_eq!(batched["severity"], "high");
    assert_eq!(batched["source"], "web");
    assert_eq!(batched["actor"]["ip"], "10.1.2.3");

    let canonical = round_trip(&server, json!({
        "type": "station.operation", "time": "2025-08-28T13:00:00+02:00", "severity": "notice",
        "actor": {"user_id": "op_1"}, "target": {"station_id": "STN-A-01"}, "facility": "plant-1",
        "correlation_id": "wf-1", "data": {"cycle_time_ms": 812}, "tags": ["line-a"]
    })).await;
    assert_eq!(canonical["time"], "2025-08-28T11:00:00Z");
    assert_eq!(canonical["severity"], "low");
    assert_eq!(canonical["category"], "manufacturing");
    assert_eq!(canonical["facility"], "plant-1");
    assert_eq!(canonical["target"]["station_id"], "STN-A-01");
    assert_eq!(canonical["tags"], json!(["line-a"]));
}

#[tokio::test]
async fn ndjson_array_and_single_object_bodies() {
    let (_dir, server) = Server::start_fresh();
    let ndjson = "{\"type\":\"a.one\"}\n\n{\"type\":\"a.two\"}\r\n{\"type\":\"a.three\"}";
    let (status, body) = server
        .post(Some(&server.key), Some("application/x-ndjson"), ndjson)
        .await;
    assert_eq!(
        (status.as_u16(), body["stored"].as_u64()),
        (202, Some(3)),
        "{body}"
    );
    let (status, body) = server
        .post(
            Some(&server.key),
            None,
            "[{\"type\":\"a.four\"},{\"type\":\"a.five\"}]",
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["stored"].as_u64()),
        (202, Some(2)),
        "sniffed JSON array: {body}"
    );
    let listed = server.get_ok("/api/v1/events?type=a.*").await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn the_same_id_twice_is_stored_once() {
    let (_dir, server) = Server::start_fresh();
    let event = json!({"id": "018f9d2e-0000-7000-8000-0000000000aa", "type": "user.login"});
    let (_, first) = server.post_json(&event).await;
    let (status, second) = server.post_json(&json!([event, event])).await;
    assert_eq!(first["stored"], 1);
    assert_eq!(status, 202);
    assert_eq!(
        (second["stored"].as_u64(), second["duplicates"].as_u64()),
        (Some(0), Some(2)),
        "{second}"
    );
    let listed = server.get_ok("/api/v1/events?type=user.login").await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
}

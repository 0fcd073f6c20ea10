//! Keys and roles: 401 without a valid key, 403 for a role too weak, 2xx otherwise.

use super::common::Server;
use reqwest::StatusCode;
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn role_matrix_over_http() {
    let (_dir, server) = Server::start_fresh();
    let mode = std::fs::metadata(server.dir.join("admin.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "admin.key must be readable by its owner only");

    let ingest = server.create_key("ingest");
    let read = server.create_key("read");
    let admin = server.key.clone();
    let event = "{\"type\":\"user.login\"}";

    let post = |key: Option<String>| {
        let server = &server;
        async move {
            server
                .post(key.as_deref(), Some("application/json"), event)
                .await
                .0
        }
    };
    assert_eq!(post(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(Some("evk_not_a_real_key".into())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(post(Some(ingest.clone())).await, StatusCode::ACCEPTED);
    assert_eq!(post(Some(read.clone())).await, StatusCode::FORBIDDEN);
    assert_eq!(post(Some(admin.clone())).await, StatusCode::ACCEPTED);

    for path in [
        "/api/v1/events",
        "/api/v1/stats",
        "/api/v1/events/018f9d2e-0000-7000-8000-000000000001",
    ] {
        let status = |key: Option<String>| {
            let server = &server;
            async move { server.get(key.as_deref(), path).await.0 }
        };
        assert_eq!(status(None).await, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            status(Some("evk_wrong".into())).await,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            status(Some(ingest.clone())).await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert!(
            status(Some(read.clone())).await != StatusCode::FORBIDDEN,
            "{path}"
        );
        assert!(
            status(Some(admin.clone())).await != StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let (status, body) = server.get(Some(&ingest), "/api/v1/events").await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ingest"),
        "{body}"
    );

    // Health endpoints need no key.
    assert_eq!(server.get(None, "/healthz").await.0, 200);
    assert_eq!(server.get(None, "/readyz").await.0, 200);
}

#[tokio::test]
async fn facility_scoped_read_key_sees_only_its_facilities() {
    let (_dir, server) = Server::start_fresh();
    let body = serde_json::json!([{"type": "a.b", "facility": "plant-1"}, {"type": "a.b", "facility": "plant-2"}, {"type": "a.b"}]);
    let (_, answer) = server.post_json(&body).await;
    let out = std::process::Command::new(super::common::BIN)
        .args([
            "keys",
            "create",
            "--role",
            "read",
            "--facility",
            "plant-2",
            "--data-dir",
        ])
        .arg(&server.dir)
        .output()
        .unwrap();
    let scoped = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (_, listed) = server.get(Some(&scoped), "/api/v1/events").await;
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["facility"], "plant-2");
    let hidden = answer["ids"][0].as_str().unwrap();
    assert_eq!(
        server
            .get(Some(&scoped), &format!("/api/v1/events/{hidden}"))
            .await
            .0,
        404
    );
}

/// `/metrics` follows one rule: open, it ignores any `Authorization` header (a wrong key
/// included); with `metrics.require_key: true`, a missing or wrong key is 401.
#[tokio::test]
async fn metrics_key_rule_is_consistent() {
    let (_dir, open) = Server::start_fresh();
    let read = open.create_key("read");
    for key in [
        None,
        Some("evk_wrong"),
        Some("not even bearer"),
        Some(&*read),
    ] {
        assert_eq!(
            open.get(key, "/metrics").await.0,
            StatusCode::OK,
            "open metrics with key {key:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    std::fs::write(&config, "version: 1\nmetrics:\n  require_key: true\n").unwrap();
    let closed = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let read = closed.create_key("read");
    let ingest = closed.create_key("ingest");
    assert_eq!(
        closed.get(None, "/metrics").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        closed.get(Some("evk_wrong"), "/metrics").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        closed.get(Some(&ingest), "/metrics").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(closed.get(Some(&read), "/metrics").await.0, StatusCode::OK);
}

//! The Rust SDK (evident-client) against a real server: the tower middleware's options,
//! the tracing layer, the spool after an outage, and flush on shutdown.

use crate::common::Server;
use evident_client::middleware::{EvidentLayer, MiddlewareOptions};
use evident_client::tracing_layer::EvidentTracingLayer;
use evident_client::{Client, Config, Event, Priority, Severity};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Serves `router` on 127.0.0.1; returns its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    format!("http://{addr}")
}

/// The events of `path` once there are at least `n`.
async fn at_least(server: &Server, path: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = server.get_ok(path).await;
        let events = page["events"].as_array().unwrap().clone();
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {} of {n} after 20 s",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn app(client: &Client, options: MiddlewareOptions) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/orders", get(|| async { "[]" }))
        .route("/admin/settings", get(|| async { "{}" }))
        .route("/health", get(|| async { "ok" }))
        .route("/other", get(|| async { "page" }))
        .layer(EvidentLayer::new(client.clone(), options))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middleware_logs_what_its_options_select() {
    let (_dir, server) = Server::start_fresh();
    let client = Client::start(Config::new(&server.url, &server.key)).unwrap();
    let options = MiddlewareOptions {
        include_headers: vec!["x-request-id".into()],
        ..MiddlewareOptions::default()
    };
    let base = serve(app(&client, options)).await;
    let http = reqwest::Client::new();
    for path in [
        "/api/orders",
        "/admin/settings",
        "/health",
        "/other",
        "/missing",
        "/health/deep",
    ] {
        http.get(format!("{base}{path}"))
            .header("x-request-id", format!("req-{path}"))
            .header("x-forwarded-for", "10.20.4.31, 10.0.0.1")
            .send()
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let access = at_least(&server, "/api/v1/events?type=api.access", 2).await;
    let mut paths: Vec<&str> = access
        .iter()
        .map(|e| e["data"]["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["/admin/settings", "/api/orders"],
        "health and other pages are not logged"
    );
    let orders = access
        .iter()
        .find(|e| e["data"]["path"] == "/api/orders")
        .unwrap();
    assert_eq!(orders["priority"], "low");
    assert_eq!(orders["data"]["status"], 200);
    assert_eq!(orders["data"]["method"], "GET");
    assert!(orders["data"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(orders["data"]["headers"]["x-request-id"], "req-/api/orders");
    assert_eq!(orders["actor"]["ip"], "10.20.4.31");
    let admin = access
        .iter()
        .find(|e| e["data"]["path"] == "/admin/settings")
        .unwrap();
    assert_eq!(admin["priority"], "medium");
    let errors = at_least(&server, "/api/v1/events?type=api.error", 1).await;
    assert_eq!(errors.len(), 1, "only /missing failed");
    assert_eq!(errors[0]["data"]["status"], 404);
    assert_eq!(errors[0]["priority"], "high");
    assert_eq!(errors[0]["outcome"], "failure");

    // log_all: the plain page is logged too, at the request priority; excluded paths
    // still are not.
    let client2 = Client::start(Config::new(&server.url, &server.key)).unwrap();
    let all = MiddlewareOptions {
        log_all: true,
        source: "mes-web".into(),
        ..MiddlewareOptions::default()
    };
    let base = serve(app(&client2, all)).await;
    for path in ["/other", "/health"] {
        http.get(format!("{base}{path}")).send().await.unwrap();
    }
    client2.flush().await.unwrap();
    let logged = at_least(&server, "/api/v1/events?type=api.access&source=mes-web", 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["data"]["path"], "/other");
    assert_eq!(logged[0]["priority"], "info");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_events_of_the_security_target_become_security_events() {
    use tracing_subscriber::layer::SubscriberExt;
    let (_dir, server) = Server::start_fresh();
    let client = Client::start(Config::new(&server.url, &server.key)).unwrap();
    let subscriber = tracing_subscriber::registry().with(EvidentTracingLayer::new(client.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(target: "security", event_type = "auth.login.failure", user = "op7", ip = "10.20.4.31", attempts = 3, "bad password");
        tracing::error!(target: "security::plc", event_type = "control.setpoint.change", facility = "plant-a", station = "oven-2", "setpoint above limit");
        tracing::warn!(target: "app::orders", event_type = "ignored.event", "not a security event");
    });
    client.flush().await.unwrap();
    let failures = at_least(&server, "/api/v1/events?type=auth.login.failure", 1).await;
    assert_eq!(failures[0]["actor"]["user_id"], "op7");
    assert_eq!(failures[0]["actor"]["ip"], "10.20.4.31");
    assert_eq!(failures[0]["severity"], "medium");
    assert_eq!(failures[0]["data"]["attempts"], 3);
    assert_eq!(failures[0]["data"]["message"], "bad password");
    let plc = at_least(&server, "/api/v1/events?type=control.setpoint.change", 1).await;
    assert_eq!(plc[0]["facility"], "plant-a");
    assert_eq!(plc[0]["severity"], "high");
    let ignored = server.get_ok("/api/v1/events?type=ignored.event").await;
    assert!(ignored["events"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_during_an_outage_wait_in_the_spool_and_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::start_on(dir.path(), &listen, &[]);
    let (url, key) = (server.url.clone(), server.key.clone());
    assert!(server.terminate().success());

    let spool = tempfile::tempdir().unwrap();
    let client = Client::start(Config::new(&url, &key).spool(spool.path())).unwrap();
    let mut ids = Vec::new();
    for n in 0..50 {
        let event = Event::new("quality.check")
            .data("n", n)
            .severity(Severity::Low);
        ids.push(event.id());
        client.send(event).await.unwrap();
    }
    client.flush().await.unwrap();
    assert_eq!(
        client.stats().spooled,
        50,
        "the server is down: all spooled"
    );
    let server = Server::start_on(dir.path(), &listen, &[]);
    client
        .send(Event::new("quality.check").data("n", 50))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let stored = at_least(&server, "/api/v1/events?type=quality.check&limit=100", 51).await;
    assert_eq!(stored.len(), 51, "each event once");
    for id in ids {
        server.get_ok(&format!("/api/v1/events/{id}")).await;
    }
    let left = std::fs::read_dir(spool.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
        .count();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_without_waiting_for_the_batch_to_fill() {
    let (_dir, server) = Server::start_fresh();
    let mut config = Config::new(&server.url, &server.key);
    config.linger = Duration::from_secs(3600);
    config.batch = 10_000;
    let client = Client::start(config).unwrap();
    for n in 0..200 {
        client
            .send(Event::new("station.operation").data("n", n))
            .await
            .unwrap();
    }
    client
        .send(
            Event::new("safety.override")
                .priority(Priority::Critical)
                .user("op1"),
        )
        .await
        .unwrap();
    let started = Instant::now();
    client.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    at_least(
        &server,
        "/api/v1/events?type=station.operation&limit=1000",
        200,
    )
    .await;
    at_least(&server, "/api/v1/events?type=safety.override", 1).await;
    assert!(
        client.send(Event::new("late.event")).await.is_err() || client.flush().await.is_err(),
        "a shut-down client takes nothing more"
    );
}

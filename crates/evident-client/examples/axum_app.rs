//! A small axum app that reports its security events to evident: requests through the
//! tower middleware, and `tracing` events of the `security` target through the tracing
//! layer.
//!
//! ```sh
//! evident serve &                                   # in another terminal
//! cargo run -p evident-client --example axum_app -- http://127.0.0.1:7600 "$(cat evident-data/admin.key)"
//! curl -s localhost:3000/api/orders; curl -s -X POST localhost:3000/login -d 'user=op7&password=nope'
//! evident query --type 'api.*'                      # the requests, as events
//! ```

use axum::routing::{get, post};
use evident_client::middleware::{EvidentLayer, MiddlewareOptions};
use evident_client::tracing_layer::EvidentTracingLayer;
use evident_client::{Client, Config};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7600".into());
    let key = args
        .next()
        .ok_or("usage: axum_app URL KEY (an ingest or admin key)")?;
    let client = Client::start(Config::new(url, key))?;

    // tracing events with target "security" become security events.
    let subscriber = tracing_subscriber::registry().with(EvidentTracingLayer::new(client.clone()));
    tracing::subscriber::set_global_default(subscriber)?;

    let app = axum::Router::new()
        .route("/api/orders", get(|| async { "[]" }))
        .route("/admin/settings", get(|| async { "{}" }))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/login",
            post(|body: String| async move {
                let user = body
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("user="))
                    .unwrap_or("unknown")
                    .to_owned();
                tracing::warn!(target: "security", event_type = "auth.login.failure", user = %user, "bad password");
                (axum::http::StatusCode::UNAUTHORIZED, "no")
            }),
        )
        .layer(EvidentLayer::new(client.clone(), MiddlewareOptions::default()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000; Ctrl-C stops (and flushes the events)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    client.shutdown().await?;
    Ok(())
}

//! evident's HTTP API.
//!
//! # Layout
//!
//! - [`router`]: every route and its handler, in one table.
//! - [`routes`]: handlers (ingest, events, findings, rules, integrity, privacy, stats,
//!   pipeline statistics, dead letters, metrics, health, the live stream).
//! - [`dashboard`]: the web dashboard's static files, compiled in.
//! - [`auth`]: API keys → [`auth::Caller`], the role → permission table, a short-lived key cache.
//! - [`inflight`]: the budget of request bytes taken in at once (429 past it).
//! - [`params`]: query strings → typed store queries.
//! - [`privacy`]: what a caller sees of personal data in events; [`reveal`]: in findings.
//! - [`error`]: the error code table and wire format.
//! - [`state`]: the handles handlers share.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod inflight;
pub mod params;
pub mod privacy;
pub mod reveal;
pub mod routes;
pub mod state;

pub use error::ApiError;
pub use state::AppState;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use std::time::Duration;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Default time a client may take to send a request body; a stalled upload gets 400
/// instead of holding its connection and buffer forever.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole HTTP API over `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.ingestor.limits().max_body_bytes;
    let body_timeout = state.body_timeout;
    Router::new()
        .route(
            "/api/v1/events",
            get(routes::events::list).post(routes::ingest::ingest),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            inflight::limit,
        ))
        .route("/api/v1/events/{id}", get(routes::events::get))
        .route("/api/v1/events/{id}/proof", get(routes::integrity::proof))
        .route("/api/v1/findings", get(routes::findings::list))
        .route(
            "/api/v1/findings/{id}",
            get(routes::findings::get).patch(routes::findings::patch),
        )
        .route("/api/v1/rules", get(routes::rules::list))
        .route(
            "/api/v1/rules/{id}",
            get(routes::rules::get)
                .put(routes::rules::put)
                .delete(routes::rules::delete),
        )
        .route(
            "/api/v1/rules/{id}/backtest",
            axum::routing::post(routes::rules::backtest),
        )
        .route("/api/v1/integrity/key", get(routes::integrity::key))
        .route("/api/v1/integrity/verify", get(routes::integrity::verify))
        .route(
            "/api/v1/privacy/erasure",
            axum::routing::post(routes::privacy::erase),
        )
        .route(
            "/api/v1/privacy/subjects/{id}",
            get(routes::privacy::subject),
        )
        .route("/api/v1/stream", get(routes::stream::websocket))
        .route("/api/v1/stream/sse", get(routes::stream::sse))
        .route(
            "/api/v1/stream/token",
            axum::routing::post(routes::stream::token),
        )
        .route("/api/v1/stats", get(routes::stats::stats))
        .route("/api/v1/stats/pipeline", get(routes::pipeline::stats))
        .route("/api/v1/dead-letters", get(routes::dead_letters::list))
        .route(
            "/api/v1/dead-letters/replay",
            axum::routing::post(routes::dead_letters::replay),
        )
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .route("/metrics", get(routes::metrics::metrics))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(|| async {
            ApiError::NotFound(
                "no such endpoint; the API lives under /api/v1, the dashboard at /".into(),
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .with_state(state)
}

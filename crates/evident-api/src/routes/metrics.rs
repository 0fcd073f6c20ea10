//! `GET /metrics`: Prometheus text format.
//!
//! Counters and queue depths are copied from the pipeline's own counters at scrape
//! time (one source of truth); histograms are recorded where the work happens.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use evident_pipeline::metrics as m;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the process-wide metrics recorder and returns the handle that renders it.
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), m::SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(m::COMMIT_BATCH_EVENTS.into()),
                m::BATCH_BUCKETS,
            )
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())
}

/// Renders the metrics. One rule: when the configuration requires a key
/// (`metrics.require_key`), a missing or wrong key is 401 and a key without the read
/// permission 403; when it does not, the `Authorization` header is ignored, whatever it
/// holds (it is not even looked up), so a scraper that always sends one still works.
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.metrics_require_key {
        Caller::from_headers(&headers, &state)
            .await?
            .require(Permission::Read)?;
    }
    let Some(handle) = &state.metrics else {
        return Err(ApiError::NotFound(
            "metrics are not enabled in this process".into(),
        ));
    };
    publish_counters(&state);
    let body = handle.render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

fn publish_counters(state: &AppState) {
    let s = state.pipeline.stats();
    metrics::counter!(m::RECEIVED).absolute(s.received);
    metrics::counter!(m::PROCESSED).absolute(s.processed);
    metrics::counter!(m::DUPLICATES).absolute(s.duplicates);
    metrics::counter!(m::DEDUPLICATED).absolute(s.deduplicated);
    metrics::counter!(m::FAILED).absolute(s.failed);
    metrics::counter!(m::DEAD_LETTERED).absolute(s.dead_lettered);
    metrics::counter!(m::REJECTED, "reason" => "invalid").absolute(s.rejected.invalid);
    metrics::counter!(m::REJECTED, "reason" => "overloaded").absolute(s.rejected.overloaded);
    metrics::counter!(m::COMMITS).absolute(s.commits);
    for lane in &s.queue_size {
        metrics::gauge!(m::QUEUE_EVENTS, "priority" => lane.priority.as_str())
            .set(lane.events as f64);
    }
    metrics::gauge!(m::QUEUE_BYTES).set(s.queue_bytes as f64);
    if let Some(rules) = &state.rules {
        let lag = rules.detection.lag();
        metrics::gauge!(evident_detect::stage::LAG_EVENTS).set(lag.events as f64);
        metrics::gauge!(evident_detect::stage::LAG_SECONDS).set(lag.seconds);
    }
}

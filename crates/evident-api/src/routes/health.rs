//! `GET /healthz` (the process lives) and `GET /readyz` (the store takes writes and
//! detection keeps up).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// How long readiness waits for the store's write lock.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Always 200 while the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the store can take a write now and detection is less than
/// [`DETECTION_MAX_LAG`] behind the commits (its lag is in the answer), else 503 with the
/// reason.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if !state.pipeline.store_ok() {
        let reason = "the store is failing commits (full, read-only or unreachable)";
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        );
    }
    let detection = state.rules.as_ref().map(|rules| rules.detection.lag());
    if let Some(lag) = detection
        && lag.seconds > DETECTION_MAX_LAG.as_secs_f64()
    {
        let reason = format!(
            "detection is {} events behind the commits, the oldest committed {:.0} s ago (more than {} s): it does not keep up with ingest",
            lag.events,
            lag.seconds,
            DETECTION_MAX_LAG.as_secs()
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason, "detection": lag_json(lag)})),
        );
    }
    match tokio::time::timeout(READY_TIMEOUT, state.store.check_writable()).await {
        Ok(Ok(())) => {
            let mut body = json!({"status": "ready"});
            if let Some(lag) = detection {
                body["detection"] = lag_json(lag);
            }
            (StatusCode::OK, Json(body))
        }
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": e.to_string()})),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "store did not answer within 2 s"})),
        ),
    }
}

/// Past this delay between a commit and detection running its events, `/readyz` says
/// the node is not ready: findings would come that much late, and taking it out of the
/// load balancer's rotation lets detection catch up.
pub const DETECTION_MAX_LAG: Duration = Duration::from_secs(300);

fn lag_json(lag: evident_detect::DetectionLag) -> Value {
    json!({"lag_events": lag.events, "lag_seconds": (lag.seconds * 10.0).round() / 10.0})
}

//! `GET /api/v1/integrity/key`: the public key checkpoints are signed with, for anyone
//! who verifies the log or a proof (no API key needed: it is public).
//! `GET /api/v1/integrity/verify`: the service walks its own log (admin key), as
//! `evident verify` does.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The checkpoint signing key: algorithm, id and public key (base64).
pub async fn key(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let public = state
        .integrity_key
        .ok_or_else(|| ApiError::NotFound("this server signs no checkpoints".into()))?;
    Ok(Json(json!({
        "algorithm": "ed25519",
        "key_id": evident_integrity::key_id(&public),
        "public_key": STANDARD.encode(public),
    })))
}

/// Walks the store's integrity log against its signed checkpoints: what verified, and the
/// first problem (`ok` false) with the range it affects.
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let (Some(public), Some(log)) = (state.integrity_key, state.integrity_log.clone()) else {
        return Err(ApiError::NotFound(
            "this store keeps no signed log yet (the embedded store does)".into(),
        ));
    };
    let walked = tokio::task::spawn_blocking(move || log.verify_log(&public, None, &|_, _| {}))
        .await
        .map_err(|_| ApiError::Internal)??;
    let report = walked.report;
    Ok(Json(json!({
        "ok": report.problem.is_none(),
        "verified_events": report.verified,
        "checkpoints": report.checkpoints,
        "unverified_tail": report.unverified_tail,
        "problem": report.problem.map(|p| p.to_string()),
        "key_id": evident_integrity::key_id(&public),
    })))
}

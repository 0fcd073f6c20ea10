//! `GET /api/v1/integrity/key`: the public key checkpoints are signed with, for anyone
//! who verifies the log or a proof (no API key needed: it is public).
//! `GET /api/v1/integrity/verify`: the service walks its own log (admin key), as
//! `evident verify` does.
//! `GET /api/v1/events/{id}/proof`: one event's inclusion proof.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evident_store::Proved;
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
/// first problem (`ok` false) with the range it affects; `beside` names every difference
/// between the side tables (folds, findings) and the log's records of them.
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let (Some(public), Some(log)) = (state.integrity_key, state.integrity_log.clone()) else {
        return Err(ApiError::NotFound("this server keeps no signed log".into()));
    };
    let walked = tokio::task::spawn_blocking(move || log.verify_log(&public, None, &|_, _| {}))
        .await
        .map_err(|_| ApiError::Internal)??;
    let problem_event = walked.problem_event.map(|id| id.to_string());
    let report = walked.report;
    Ok(Json(json!({
        "ok": report.problem.is_none() && walked.beside.is_empty(),
        "verified_events": report.verified,
        "checkpoints": report.checkpoints,
        "unverified_tail": report.unverified_tail,
        "problem": report.problem.map(|p| p.to_string()),
        "problem_event": problem_event,
        "beside": walked.beside,
        "key_id": evident_integrity::key_id(&public),
    })))
}

/// `GET /api/v1/events/{id}/proof`: the event's inclusion proof against the newest
/// signed checkpoint, a document anyone can check with the public key alone (read key;
/// the event must be within the key's facilities). 409 while the event is newer than
/// every checkpoint.
pub async fn proof(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::InvalidParameter(format!("event id `{id}` is not a UUID")))?;
    let Some(log) = state.integrity_log.clone() else {
        return Err(ApiError::NotFound("this server keeps no signed log".into()));
    };
    let missing = || ApiError::NotFound(format!("no event with id {id}"));
    if state.store.get(id, caller.scope()).await?.is_none() {
        return Err(missing());
    }
    let proved = tokio::task::spawn_blocking(move || log.prove(id))
        .await
        .map_err(|_| ApiError::Internal)??;
    match proved {
        Some(Proved::Proof(proof)) => Ok(Json(proof.to_json())),
        // Found above, not yet in the log: a critical event on its way from the journal.
        None => Err(ApiError::Conflict(format!(
            "event {id} is still being committed; its proof follows the next checkpoint"
        ))),
        Some(Proved::NotYetSigned(seq)) => Err(ApiError::Conflict(format!(
            "event {id} (seq {seq}) is newer than the last signed checkpoint; the next checkpoint covers it within seconds"
        ))),
        Some(Proved::OutsideLog(seq)) => Err(ApiError::Conflict(format!(
            "event {id} (seq {seq}) was stored before this store kept a signed log"
        ))),
    }
}

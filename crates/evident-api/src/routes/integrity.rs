//! `GET /api/v1/integrity/key`: the public key checkpoints are signed with, for anyone
//! who verifies the log or a proof (no API key needed: it is public).

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

//! `GET /api/v1/findings`, `GET /api/v1/findings/{id}`, `PATCH /api/v1/findings/{id}`.
//!
//! Reading findings needs a read key; so does changing a finding's status (triage is
//! what analysts with read keys do). Who changed it is recorded as the key, plus the
//! name the request gives in `by`.
//!
//! Every answer shows a finding's group key as the caller may see it: personal values in
//! the clear for keys with the personal-data permission, pseudonyms for the others
//! ([`crate::reveal`]).

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::params;
use crate::privacy::View;
use crate::reveal;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use evident_store::{Finding, FindingStatus, FindingStore, StatusChange, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// The findings store, or 404 when detection is not configured.
pub(crate) fn store(state: &AppState) -> Result<&Arc<dyn FindingStore>, ApiError> {
    state
        .findings
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("detection is not running on this server".into()))
}

/// Lists findings matching the query parameters, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let mut query = params::finding_query(raw.as_deref(), OffsetDateTime::now_utc())?;
    query.scope = caller.scope();
    let page = store(&state)?.findings(query).await?;
    let findings = shown(&state, &caller, page.findings).await?;
    Ok(Json(json!({
        "findings": findings,
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}

/// One finding by id.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let id = finding_id(&id)?;
    match store(&state)?.finding(id, caller.scope()).await? {
        Some(finding) => Ok(Json(one(&state, &caller, finding).await?)),
        None => Err(not_found(id)),
    }
}

/// What `PATCH /api/v1/findings/{id}` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    status: String,
    #[serde(default)]
    by: Option<String>,
}

/// Changes a finding's status: `{"status": "acknowledged" | "resolved" | "open", "by": "..."}`.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let id = finding_id(&id)?;
    let patch: Patch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::InvalidBody(format!(
            "expected {{\"status\": \"open\" | \"acknowledged\" | \"resolved\", \"by\": \"who\"}}: {e}"
        ))
    })?;
    let status: FindingStatus = patch
        .status
        .parse()
        .map_err(|e| ApiError::InvalidBody(format!("status: {e}")))?;
    let key = format!("key {}", caller.key.id);
    let by = match patch.by.as_deref().map(str::trim) {
        Some(name) if name.len() > 256 => {
            return Err(ApiError::InvalidBody("by: at most 256 bytes".into()));
        }
        Some(name) if !name.is_empty() => format!("{name} ({key})"),
        _ => key,
    };
    let change = StatusChange {
        status,
        by,
        at: evident_model::unix_micros(OffsetDateTime::now_utc()),
    };
    match store(&state)?
        .set_finding_status(id, change, caller.scope())
        .await
    {
        Ok(Some(finding)) => {
            if let Some(stream) = &state.stream {
                let seq = stream.live.position();
                let note = super::stream::finding_note_revealed(
                    &finding,
                    seq,
                    state.privacy.as_ref(),
                    &state.reader(),
                )
                .await;
                stream.live.publish_finding(note);
            }
            Ok(Json(one(&state, &caller, finding).await?))
        }
        Ok(None) => Err(not_found(id)),
        Err(StoreError::Rejected(reason)) => Err(ApiError::Conflict(reason)),
        Err(e) => Err(e.into()),
    }
}

/// `findings` as `caller` sees them: personal values in the clear with the permission,
/// pseudonyms without.
pub(crate) async fn shown(
    state: &AppState,
    caller: &Caller,
    findings: Vec<Finding>,
) -> Result<Vec<Value>, ApiError> {
    let view = View::new(state.privacy.as_ref(), caller);
    reveal::present(findings, &view, &state.reader(), &caller.scope()).await
}

async fn one(state: &AppState, caller: &Caller, finding: Finding) -> Result<Value, ApiError> {
    let mut shown = shown(state, caller, vec![finding]).await?;
    Ok(shown.pop().unwrap_or(Value::Null))
}

fn finding_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::InvalidParameter(format!("finding id `{id}` is not a UUID")))
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no finding with id {id}"))
}

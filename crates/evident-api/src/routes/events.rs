//! `GET /api/v1/events` and `GET /api/v1/events/{id}`.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::params;
use crate::privacy::View;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use evident_store::StoredEvent;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// A stored event as the API shows it to a caller: the canonical event plus its commit
/// sequence number, its personal fields as the caller's [`View`] allows.
pub fn present(stored: &StoredEvent, view: &View) -> Result<Value, ApiError> {
    let mut value: Value = serde_json::from_slice(&stored.bytes).map_err(|e| {
        tracing::error!(seq = stored.seq, error = %e, "stored event is not valid JSON");
        ApiError::Internal
    })?;
    if let Some(map) = value.as_object_mut() {
        map.insert("seq".into(), stored.seq.into());
    }
    view.show(&mut value);
    Ok(value)
}

/// Lists events matching the query parameters, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let view = View::new(state.privacy.as_ref(), &caller);
    let mut query = params::event_query(raw.as_deref(), OffsetDateTime::now_utc())?;
    view.filters(&mut query)?;
    query.scope = caller.scope();
    let page = state.store.query(query).await?;
    let events = page
        .events
        .iter()
        .map(|e| present(e, &view))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        json!({"events": events, "next_cursor": page.next_cursor.map(|c| c.encode())}),
    ))
}

/// One event by id; with `?include=findings`, also the findings it is evidence of.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let include_findings = params::include_findings(raw.as_deref())?;
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::InvalidParameter(format!("event id `{id}` is not a UUID")))?;
    let (stored, folded_into) = match state.store.get(id, caller.scope()).await? {
        Some(stored) => (stored, None),
        // A repeat folded into an earlier event was acknowledged with its own id: that
        // id answers with the event it was folded into, and says so.
        None => match state.store.fold_target(id).await? {
            Some(into) => match state.store.get(into, caller.scope()).await? {
                Some(stored) => (stored, Some(into)),
                None => return Err(ApiError::NotFound(format!("no event with id {id}"))),
            },
            None => return Err(ApiError::NotFound(format!("no event with id {id}"))),
        },
    };
    let view = View::new(state.privacy.as_ref(), &caller);
    let mut event = present(&stored, &view)?;
    if let (Some(into), Some(map)) = (folded_into, event.as_object_mut()) {
        map.insert(
            "folded".into(),
            json!({"id": id, "into": into, "note": "this id was a repeat within the deduplication window, folded into the event shown"}),
        );
    }
    if include_findings {
        let findings = crate::routes::findings::store(&state)?
            .findings_for_event(folded_into.unwrap_or(id), caller.scope())
            .await?;
        let findings = crate::routes::findings::shown(&state, &caller, findings).await?;
        if let Some(map) = event.as_object_mut() {
            map.insert("findings".into(), Value::Array(findings));
        }
    }
    Ok(Json(event))
}

//! `GET /api/v1/dead-letters` and `POST /api/v1/dead-letters/replay` (admin only).

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::params::pairs;
use crate::state::AppState;
use axum::Json;
use axum::extract::{RawQuery, State};
use evident_model::Event;
use evident_pipeline::{Ack, EventOutcome};
use evident_sources::Context;
use serde_json::{Value, json};

/// Most dead letters one call lists or replays.
const MAX_BATCH: usize = 1000;

fn limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let mut limit = 100;
    for (key, value) in pairs(raw)? {
        match key.as_str() {
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_BATCH).contains(&n) => limit = n,
                _ => {
                    return Err(ApiError::InvalidParameter(format!(
                        "limit `{value}` must be a whole number from 1 to {MAX_BATCH}"
                    )));
                }
            },
            other => {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown parameter `{other}`; known: limit"
                )));
            }
        }
    }
    Ok(limit)
}

/// Lists dead letters, oldest first, with the error that sent each there.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let letters = state.store.dead_letters(limit(raw.as_deref())?).await?;
    let items: Vec<Value> = letters
        .iter()
        .map(|d| {
            let event: Value = serde_json::from_slice(&d.bytes).unwrap_or(Value::Null);
            let failed_at = super::rfc3339(d.failed_at);
            json!({"id": d.id, "error": d.error, "failed_at": failed_at, "event": event})
        })
        .collect();
    Ok(Json(json!({"dead_letters": items})))
}

/// Sends up to `limit` dead letters through the pipeline again; those that are now
/// stored (or were already) leave the table, those that fail again are dead-lettered anew.
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let letters = state
        .store
        .dead_letters(limit(raw.as_deref()).unwrap_or(MAX_BATCH))
        .await?;
    let mut events = Vec::with_capacity(letters.len());
    let mut ids = Vec::with_capacity(letters.len());
    for d in &letters {
        match serde_json::from_slice::<Event>(&d.bytes) {
            Ok(event) => {
                events.push(event);
                ids.push(d.id);
            }
            Err(e) => {
                tracing::error!(dead_letter = d.id, error = %e, "dead letter does not decode; left in place")
            }
        }
    }
    let context = Context {
        ack: Ack::Commit,
        key: Some(caller.key.id),
    };
    let report = state
        .ingestor
        .ingest_events(events, context)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let (mut stored, mut duplicates, mut again, mut failed) = (0, 0, 0, 0);
    let mut done = Vec::new();
    failed += report.rejected.len();
    for taken in report.taken {
        let (id, outcome) = (ids[taken.index], taken.outcome);
        match outcome {
            EventOutcome::Stored(_) | EventOutcome::Journaled => stored += 1,
            EventOutcome::Duplicate => duplicates += 1,
            EventOutcome::DeadLettered => again += 1,
            _ => {
                failed += 1;
                continue;
            }
        }
        done.push(id);
    }
    state.store.remove_dead_letters(done).await?;
    Ok(Json(
        json!({"replayed": stored + duplicates + again + failed, "stored": stored, "duplicates": duplicates, "dead_lettered_again": again, "failed": failed}),
    ))
}

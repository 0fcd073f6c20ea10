//! `POST /api/v1/events`: admit, commit durably, then answer 202.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evident_ingest::{Admission, BodyFormat, DecodeError, Limits, Rejection, admit};
use evident_store::Appended;
use serde::Serialize;
use time::OffsetDateTime;

/// Bodies above this size are admitted on a blocking thread, off the async workers.
const INLINE_ADMIT_BYTES: usize = 64 * 1024;

/// One broken rule of one refused event, as the client sees it.
#[derive(Debug, Serialize)]
pub struct EventError {
    /// Position of the event in the request (0-based).
    pub index: usize,
    /// Body line of the event (NDJSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Field path as sent; empty for the event as a whole.
    pub field: String,
    /// The rule it broke.
    pub reason: String,
}

/// The answer to an ingest request.
#[derive(Debug, Serialize)]
pub struct IngestResponse {
    /// Events committed by this request, or already stored under the same id.
    pub accepted: usize,
    /// Of those, events newly stored.
    pub stored: usize,
    /// Of those, events whose id was already stored (retries): stored once, not again.
    pub duplicates: usize,
    /// Events refused.
    pub rejected: usize,
    /// One entry per event in request order: its id when accepted, null when refused.
    pub ids: Vec<Option<uuid::Uuid>>,
    /// Every broken rule of every refused event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<EventError>,
}

/// Handles an ingest request.
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Ingest)?;
    let body = body.map_err(|e| body_error(&e, state.limits.max_body_bytes))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let admission = admit_body(body, content_type, state.limits).await?;
    let mut ids: Vec<Option<uuid::Uuid>> = vec![None; admission.total()];
    let errors = flatten(&admission.rejected);
    let rejected = admission.rejected.len();
    if admission.accepted.is_empty() {
        let response = IngestResponse {
            accepted: 0,
            stored: 0,
            duplicates: 0,
            rejected,
            ids,
            errors,
        };
        return Ok(no_valid_event(response));
    }
    let (indices, events): (Vec<usize>, Vec<_>) = admission.accepted.into_iter().unzip();
    for (&i, e) in indices.iter().zip(&events) {
        ids[i] = Some(e.event.id);
    }
    let outcomes = state.committer.commit(events).await.map_err(|e| {
        tracing::warn!(error = %e, "ingest not committed");
        ApiError::Unavailable("events were not committed; retry the request".into())
    })?;
    let duplicates = outcomes
        .iter()
        .filter(|o| **o == Appended::Duplicate)
        .count();
    let accepted = outcomes.len();
    let response = IngestResponse {
        accepted,
        stored: accepted - duplicates,
        duplicates,
        rejected,
        ids,
        errors,
    };
    Ok((StatusCode::ACCEPTED, Json(response)).into_response())
}

async fn admit_body(
    body: Bytes,
    content_type: Option<String>,
    limits: Limits,
) -> Result<Admission, ApiError> {
    let large = body.len() > INLINE_ADMIT_BYTES;
    let run = move || {
        let format = BodyFormat::from_content_type(content_type.as_deref(), &body)?;
        admit(&body, format, &limits, OffsetDateTime::now_utc())
    };
    let result = if large {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|_| ApiError::Internal)?
    } else {
        run()
    };
    result.map_err(decode_error)
}

/// A body that could not be read: over the size limit (413), or cut off, stalled past
/// [`crate::BODY_TIMEOUT`] or otherwise unreadable (400).
fn body_error(e: &BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit)
    } else {
        ApiError::InvalidBody(format!(
            "could not read the request body: {}",
            e.body_text()
        ))
    }
}

fn decode_error(e: DecodeError) -> ApiError {
    match e {
        DecodeError::UnsupportedContentType(_) => ApiError::UnsupportedMediaType(e.to_string()),
        DecodeError::TooManyEvents { .. } => ApiError::TooManyEvents(e.to_string()),
        _ => ApiError::InvalidBody(e.to_string()),
    }
}

fn flatten(rejected: &[Rejection]) -> Vec<EventError> {
    rejected
        .iter()
        .flat_map(|r| {
            r.errors.iter().map(|e| EventError {
                index: r.index,
                line: r.line,
                field: e.field.clone(),
                reason: e.reason.clone(),
            })
        })
        .collect()
}

fn no_valid_event(response: IngestResponse) -> Response {
    let message = format!(
        "none of the {} events in the request is valid; see `errors`",
        response.rejected
    );
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    body["error"] = serde_json::json!({"code": "no_valid_events", "message": message});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

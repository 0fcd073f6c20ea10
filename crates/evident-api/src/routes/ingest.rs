//! `POST /api/v1/events`: admit, commit durably, then answer 202.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evident_ingest::{
    Admission, BodyFormat, DecodeError, Limits, Normalized, PriorityRules, Rejection,
    normalize_body,
};
use evident_model::Priority;
use evident_pipeline::{Ack, EventOutcome, RefusalReason};
use evident_privacy::Privacy;
use serde::Serialize;
use std::sync::Arc;
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

/// An event folded by deduplication into an earlier, stored event.
#[derive(Debug, Serialize)]
pub struct Folded {
    /// Position in the request.
    pub index: usize,
    /// The folded event's id.
    pub id: uuid::Uuid,
    /// The stored event it was folded into (the summary event will count it there).
    pub into: uuid::Uuid,
}

/// The answer to an ingest request.
#[derive(Debug, Default, Serialize)]
pub struct IngestResponse {
    /// Events taken: committed (stored, already stored, or dead-lettered), or with
    /// `?ack=none` queued.
    pub accepted: usize,
    /// Of those, events newly stored.
    pub stored: usize,
    /// Of those, events whose id was already stored (retries): stored once, not again.
    pub duplicates: usize,
    /// Of those, events the store kept refusing, kept in the dead-letter table.
    #[serde(skip_serializing_if = "is_zero")]
    pub dead_lettered: usize,
    /// Of those, events queued but not yet committed (`?ack=none` only).
    #[serde(skip_serializing_if = "is_zero")]
    pub queued: usize,
    /// Of those, repeats within the deduplication window, each folded into a stored event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<Folded>,
    /// Events refused: invalid, or over their priority's queue share (retry those).
    pub rejected: usize,
    /// One entry per event in request order: its id when accepted, null when refused.
    pub ids: Vec<Option<uuid::Uuid>>,
    /// Every broken rule of every refused event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<EventError>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One request's refused events, by reason and priority.
#[derive(Default)]
struct Refusals(std::collections::BTreeMap<(RefusalReason, Priority), u64>);

impl Refusals {
    fn add(&mut self, reason: RefusalReason, priority: Priority) {
        *self.0.entry((reason, priority)).or_default() += 1;
    }
}

/// Seconds a client is asked to wait before retrying refused events.
const RETRY_AFTER_SECS: &str = "1";

/// Handles an ingest request.
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Ingest)?;
    let started = std::time::Instant::now();
    let ack = ack_mode(query.as_deref())?;
    let encoding = crate::encoding::ContentEncoding::of(&headers)?;
    let body = body.map_err(|e| body_error(&e, state.limits.max_body_bytes))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut admission = admit_body(
        body,
        encoding,
        content_type,
        state.limits,
        state.priorities.clone(),
        state.admission_permits.clone(),
        state.pipeline.privacy().cloned(),
    )
    .await?;
    state.pipeline.count_invalid(admission.rejected.len());
    let mut response = IngestResponse {
        ids: vec![None; admission.total()],
        errors: flatten(&admission.rejected),
        rejected: admission.rejected.len(),
        ..IngestResponse::default()
    };
    if admission.accepted.is_empty() {
        return Ok(no_valid_event(response));
    }
    let lines = std::mem::take(&mut admission.lines);
    let (indices, events): (Vec<usize>, Vec<_>) = admission.accepted.into_iter().unzip();
    let (ids, priorities): (Vec<uuid::Uuid>, Vec<Priority>) = events
        .iter()
        .map(|e: &evident_model::EncodedEvent| (e.event.id, e.event.priority))
        .unzip();
    let outcomes = state
        .pipeline
        .submit(events, ack)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut failure = None;
    let mut refused = Refusals::default();
    for (((index, id), priority), outcome) in
        indices.into_iter().zip(ids).zip(priorities).zip(outcomes)
    {
        match outcome {
            EventOutcome::Overloaded => {
                refused.add(RefusalReason::Overloaded, priority);
                response.rejected += 1;
                response.errors.push(EventError {
                    index,
                    line: lines.get(index).copied(),
                    field: String::new(),
                    reason: "overloaded: the queue for this event's priority is full; retry later"
                        .into(),
                });
                continue;
            }
            EventOutcome::Failed(reason) => {
                refused.add(RefusalReason::StoreFailed, priority);
                failure = Some(reason);
            }
            EventOutcome::Stored(_) | EventOutcome::Journaled => response.stored += 1,
            EventOutcome::Duplicate => response.duplicates += 1,
            EventOutcome::DeadLettered => response.dead_lettered += 1,
            EventOutcome::Queued => response.queued += 1,
            EventOutcome::Folded(into) => response.folded.push(Folded { index, id, into }),
        }
        response.accepted += 1;
        response.ids[index] = Some(id);
    }
    for ((reason, priority), n) in refused.0 {
        state
            .pipeline
            .count_refused(reason, Some(priority), Some(caller.key.id), n);
    }
    response.errors.sort_by_key(|e| e.index);
    metrics::histogram!(evident_pipeline::metrics::INGEST_SECONDS)
        .record(started.elapsed().as_secs_f64());
    Ok(answer(response, failure))
}

/// 503 when any event failed to commit, 429 when any was refused for overload, else 202.
fn answer(response: IngestResponse, failure: Option<String>) -> Response {
    let overloaded = response
        .errors
        .iter()
        .any(|e| e.reason.starts_with("overloaded"));
    let (status, error) = match (&failure, overloaded) {
        (Some(reason), _) => {
            tracing::warn!(%reason, "ingest not fully committed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some((
                    "unavailable",
                    "the store could not commit every event; retry the request (ids make retries safe)",
                )),
            )
        }
        (None, true) => (
            StatusCode::TOO_MANY_REQUESTS,
            Some((
                "overloaded",
                "some events were refused because the service is overloaded; retry them after Retry-After",
            )),
        ),
        (None, false) => (StatusCode::ACCEPTED, None),
    };
    let Some((code, message)) = error else {
        return (status, Json(response)).into_response();
    };
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    body["error"] = serde_json::json!({"code": code, "message": message});
    let mut out = (status, Json(body)).into_response();
    out.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    out
}

/// The acknowledgement mode a query string asks for: `ack=commit` (default) or `ack=none`.
fn ack_mode(query: Option<&str>) -> Result<Ack, ApiError> {
    let mut ack = Ack::Commit;
    for (key, value) in crate::params::pairs(query)? {
        match (key.as_str(), value.as_str()) {
            ("ack", "commit") => ack = Ack::Commit,
            ("ack", "none") => ack = Ack::Queued,
            ("ack", other) => {
                return Err(ApiError::InvalidParameter(format!(
                    "ack `{other}` is not commit or none"
                )));
            }
            (other, _) => {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown parameter `{other}`; ingest takes only ack=commit|none"
                )));
            }
        }
    }
    Ok(ack)
}

async fn admit_body(
    body: Bytes,
    encoding: crate::encoding::ContentEncoding,
    content_type: Option<String>,
    limits: Limits,
    priorities: Arc<PriorityRules>,
    permits: Arc<tokio::sync::Semaphore>,
    privacy: Option<Arc<Privacy>>,
) -> Result<Admission, ApiError> {
    // A compressed body may decode to the limit: never decode it on an async worker.
    let large =
        body.len() > INLINE_ADMIT_BYTES || encoding != crate::encoding::ContentEncoding::Identity;
    let normalize = move || {
        let body = encoding.decode(body, limits.max_body_bytes)?;
        let format =
            BodyFormat::from_content_type(content_type.as_deref(), &body).map_err(decode_error)?;
        normalize_body(
            &body,
            format,
            &limits,
            &priorities,
            OffsetDateTime::now_utc(),
        )
        .map_err(decode_error)
    };
    if large {
        // At most `admission_threads` large bodies are parsed at once: on a small machine
        // a crowd of parsing threads would take the CPU from the writer and from the
        // async workers answering small (and critical) requests.
        let _permit = permits
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal)?;
        tokio::task::spawn_blocking(move || {
            seal_and_encode(normalize()?, privacy.as_deref(), &limits)
        })
        .await
        .map_err(|_| ApiError::Internal)?
    } else {
        let normalized = normalize()?;
        // Sealing may store new subjects' keys: off the async workers.
        match privacy {
            Some(privacy) if normalized.events.iter().any(|e| privacy.applies_to(e)) => {
                tokio::task::spawn_blocking(move || {
                    seal_and_encode(normalized, Some(&privacy), &limits)
                })
                .await
                .map_err(|_| ApiError::Internal)?
            }
            _ => Ok(normalized.encode(&limits)),
        }
    }
}

/// Seals the personal fields of a request's valid events (when protection is on), then
/// encodes each event once.
fn seal_and_encode(
    mut normalized: Normalized,
    privacy: Option<&Privacy>,
    limits: &Limits,
) -> Result<Admission, ApiError> {
    if let Some(privacy) = privacy {
        privacy.seal(&mut normalized.events).map_err(|e| {
            ApiError::Unavailable(format!("personal data could not be sealed: {e}"))
        })?;
    }
    Ok(normalized.encode(limits))
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

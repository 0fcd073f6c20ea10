//! `POST /api/v1/events`: the HTTP source. Reads the body and its headers, hands them
//! to the ingestor (admit, seal, commit durably), and turns its report into the answer.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evident_ingest::DecodeError;
use evident_pipeline::Ack;
use evident_sources::http::{Compression, HttpBody};
use evident_sources::{Context, IngestError};

/// Handles an ingest request.
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Ingest)?;
    let ack = ack_mode(query.as_deref())?;
    let text = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().unwrap_or("(not text)"))
    };
    let compression = Compression::from_header(text(header::CONTENT_ENCODING))
        .map_err(ApiError::UnsupportedMediaType)?;
    let content_type = text(header::CONTENT_TYPE).map(str::to_owned);
    let body = body.map_err(|e| body_error(&e, state.ingestor.limits().max_body_bytes))?;
    let input = HttpBody {
        bytes: body,
        content_type,
        compression,
    };
    let context = Context {
        ack,
        key: Some(caller.key.id),
    };
    let report = state
        .ingestor
        .ingest(input, context)
        .await
        .map_err(|e| ingest_error(e, state.ingestor.limits().max_body_bytes))?;
    let answer = evident_sources::http::answer(report);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(answer.body)).into_response();
    if let Some(seconds) = answer.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
    }
    Ok(response)
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

fn ingest_error(e: IngestError, limit: usize) -> ApiError {
    match e {
        IngestError::Decode(e) => match e {
            DecodeError::UnsupportedContentType(_) => ApiError::UnsupportedMediaType(e.to_string()),
            DecodeError::TooManyEvents { .. } => ApiError::TooManyEvents(e.to_string()),
            DecodeError::TooLarge { .. } => ApiError::PayloadTooLarge(limit),
            _ => ApiError::InvalidBody(e.to_string()),
        },
        IngestError::Unavailable(reason) => ApiError::Unavailable(reason),
        IngestError::Internal(reason) => {
            tracing::error!(%reason, "admission failed");
            ApiError::Internal
        }
    }
}

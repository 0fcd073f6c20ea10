//! A bound on request bytes being taken in at once, so memory stays bounded however many
//! clients send at the same time.
//!
//! Each POST reserves its `Content-Length` (or, without one, the largest body allowed)
//! from a shared budget before its body is read, and returns it when the answer is made.
//! A request that does not fit gets 429 with `Retry-After` straight away, before any
//! parsing: past this point the service cannot yet know the priorities inside.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Default budget of request bytes in flight.
pub const DEFAULT_INFLIGHT_BYTES: usize = 64 * 1024 * 1024;

/// The shared budget, counted in KiB.
#[derive(Clone)]
pub struct InflightBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

impl InflightBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }
}

/// Middleware: reserves a POST's body size from the budget for the request's lifetime.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bytes = declared
        .unwrap_or(state.ingestor.limits().max_body_bytes)
        .min(state.ingestor.limits().max_body_bytes);
    let budget = &state.inflight;
    let kib = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, budget.total_kib);
    match budget.permits.clone().try_acquire_many_owned(kib) {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            // Counted as audit evidence; the body is unread, so this counts requests.
            state.pipeline.count_refused(
                evident_pipeline::RefusalReason::InflightBudget,
                None,
                None,
                1,
            );
            let mut refused = ApiError::Overloaded(
                "too many request bytes are being taken in; retry after Retry-After".into(),
            )
            .into_response();
            // The body is left unread, so the connection cannot carry another request:
            // say so, or a client may reuse it and fail writing its next request.
            refused.headers_mut().insert(
                header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            refused
        }
    }
}

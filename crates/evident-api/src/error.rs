//! The one table of API error codes, their HTTP statuses, and the wire format
//! `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every error the API answers with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer` header.
    #[error("missing API key; send `Authorization: Bearer KEY`")]
    MissingKey,
    /// A key that is unknown or revoked.
    #[error("invalid API key")]
    InvalidKey,
    /// A valid key whose role may not do this.
    #[error("a key with role `{role}` may not {action}")]
    Forbidden {
        /// The key's role.
        role: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// A query or path parameter broke a rule.
    #[error("{0}")]
    InvalidParameter(String),
    /// The request conflicts with the current state of the resource.
    #[error("{0}")]
    Conflict(String),
    /// The body cannot be decoded into events.
    #[error("{0}")]
    InvalidBody(String),
    /// The body is larger than the limit.
    #[error("request body exceeds the {0}-byte limit; split it into smaller requests")]
    PayloadTooLarge(usize),
    /// Too many events in one request.
    #[error("{0}")]
    TooManyEvents(String),
    /// Content type evident does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The service is taking in as much as it can; retry after `Retry-After`.
    #[error("{0}")]
    Overloaded(String),
    /// The store cannot take writes or answer now; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bug; details are logged, not sent.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingKey => "missing_key",
            Self::InvalidKey => "invalid_key",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::InvalidParameter(_) => "invalid_parameter",
            Self::Conflict(_) => "conflict",
            Self::InvalidBody(_) => "invalid_body",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::TooManyEvents(_) => "too_many_events",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded(_) => "overloaded",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingKey | Self::InvalidKey => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidParameter(_) | Self::InvalidBody(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) | Self::TooManyEvents(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self {
            Self::MissingKey | Self::InvalidKey => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable(_) | Self::Overloaded(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<evident_store::StoreError> for ApiError {
    fn from(e: evident_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ApiError::Unavailable("the store did not answer; retry shortly".into())
    }
}

//! `POST /api/v1/privacy/erasure`: destroys a subject's key (right to erasure), and
//! records the erasure as an audit event.
//! `GET /api/v1/privacy/subjects/{id}`: what is held about a subject (access request).
//! Both need an admin key, and answer 404 when personal data protection is off.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::privacy::View;
use crate::routes::events::present;
use crate::routes::rfc3339;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use evident_pipeline::{Ack, EventOutcome};
use evident_privacy::{KeyStatus, Privacy};
use evident_store::EventQuery;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Most events a subject export lists; past it the answer says `truncated`.
pub const MAX_EXPORT_EVENTS: usize = 10_000;

/// The body of an erasure request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// The subject: the value of its first personal field (usually its user id).
    pub subject: String,
}

fn privacy(state: &AppState) -> Result<Arc<Privacy>, ApiError> {
    state
        .privacy
        .as_ref()
        .cloned()
        .ok_or_else(|| ApiError::NotFound("personal data protection is off".into()))
}

fn subject_text(subject: &str) -> Result<&str, ApiError> {
    let subject = subject.trim();
    if subject.is_empty() || subject.len() > 1024 {
        return Err(ApiError::InvalidParameter(
            "subject must be 1 to 1024 characters".into(),
        ));
    }
    Ok(subject)
}

/// Destroys the subject's key: every personal field sealed under it becomes unreadable
/// for good, in the store and in any copy of it, while the stored bytes (and so the
/// integrity log) stay as they were.
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let privacy = privacy(&state)?;
    let request: ErasureRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidBody(format!("expected {{\"subject\": \"...\"}}: {e}")))?;
    let subject = subject_text(&request.subject)?.to_owned();
    let erasure = tokio::task::spawn_blocking(move || privacy.erase(&subject))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "erasure failed");
            ApiError::Unavailable("the subject key store failed; retry the erasure".into())
        })?;
    let audit =
        evident_pipeline::system::erasure_recorded(&erasure.key, erasure.had_key, caller.key.id);
    let audit_id = audit.event.id;
    let context = evident_sources::Context {
        ack: Ack::Commit,
        key: Some(caller.key.id),
    };
    let report = state
        .ingestor
        .ingest_events(vec![audit.event], context)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let recorded = matches!(
        report.taken.first().map(|t| &t.outcome),
        Some(EventOutcome::Stored(_) | EventOutcome::Journaled)
    );
    if !recorded {
        tracing::error!(subject = %erasure.key, "erasure done but its audit event was not committed");
    }
    Ok(Json(json!({
        "subject": erasure.key,
        "key_destroyed": erasure.had_key,
        "audit_event": recorded.then(|| audit_id.to_string()),
    })))
}

/// Everything stored about a subject, readable: its key's state and the events recorded
/// under its pseudonym (as user or as client address), newest first.
pub async fn subject(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let privacy = privacy(&state)?;
    let subject = subject_text(&subject)?.to_owned();
    let lookup = privacy.clone();
    let asked = subject.clone();
    let (pseudonym, status) = tokio::task::spawn_blocking(move || lookup.status(&asked))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "subject key lookup failed");
            ApiError::Unavailable("the subject key store failed; retry".into())
        })?;
    let view = View::new(Some(&privacy), &caller);
    let mut events = Vec::new();
    let mut truncated = false;
    for by_ip in [false, true] {
        let mut query = EventQuery {
            limit: crate::params::MAX_LIMIT,
            scope: caller.scope(),
            ..EventQuery::default()
        };
        if by_ip {
            query.source_ip = Some(pseudonym.clone());
        } else {
            query.user_id = Some(pseudonym.clone());
        }
        loop {
            let page = state.store.query(query.clone()).await?;
            for stored in &page.events {
                if events.len() == MAX_EXPORT_EVENTS {
                    truncated = true;
                    break;
                }
                events.push(present(stored, &view)?);
            }
            match page.next_cursor {
                Some(cursor) if !truncated => query.cursor = Some(cursor),
                _ => break,
            }
        }
    }
    let key = match status {
        KeyStatus::Held { created_at } => {
            json!({"state": "held", "created_at": rfc3339(created_at * 1_000_000)})
        }
        KeyStatus::Erased { erased_at } => {
            json!({"state": "erased", "erased_at": rfc3339(erased_at * 1_000_000)})
        }
        KeyStatus::Unknown => json!({"state": "unknown"}),
    };
    Ok(Json(json!({
        "subject": subject,
        "pseudonym": pseudonym,
        "key": key,
        "events": events,
        "truncated": truncated,
    })))
}

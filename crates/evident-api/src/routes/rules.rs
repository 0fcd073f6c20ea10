//! `GET /api/v1/rules`, `GET/PUT/DELETE /api/v1/rules/{id}`: the rules the service
//! detects with; `POST /api/v1/rules/{id}/backtest`: one rule over stored events. Reading needs a read key, changing needs an admin key. A change is
//! checked against the whole rules directory before it is written; a rule that cannot
//! load is refused with its file, line and reason, and the running rules stay as they
//! are. Accepted changes take effect at once (the detection stage swaps rule sets,
//! keeping the open correlation windows of the rules it keeps).

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::params;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use evident_detect::library::{Library, LibraryError};
use evident_detect::{DetectionHandle, RuleProblem};
use evident_store::EventQuery;
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;

/// What the rules routes work on.
#[derive(Clone)]
pub struct RulesState {
    /// The rules directory.
    pub library: Arc<Library>,
    /// The running detection stage, which takes new rule sets.
    pub detection: DetectionHandle,
}

fn rules(state: &AppState) -> Result<&RulesState, ApiError> {
    state
        .rules
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("detection is not running on this server".into()))
}

/// Every loaded rule, and every rule file problem.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let report = rules(&state)?.library.report();
    Ok(Json(json!({
        "rules": report.rules,
        "problems": report.problems,
    })))
}

/// One rule and the text of its file.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let library = rules(&state)?.library.clone();
    let source = blocking(move || library.rule(&id)).await?;
    Ok(Json(json!(source)))
}

/// Adds a rule, or replaces the file that holds it, with the YAML in the body.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Admin)?;
    let yaml = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::InvalidBody("the rule must be UTF-8 YAML text".into()))?;
    let rules = rules(&state)?.clone();
    let library = rules.library.clone();
    let wanted = id.clone();
    let (detector, created) = blocking(move || library.put(&wanted, &yaml)).await?;
    rules.detection.replace_rules(detector);
    let source = {
        let library = rules.library.clone();
        blocking(move || library.rule(&id)).await?
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(source))))
}

/// Removes a rule (the file holding it, when it is alone there).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Admin)?;
    let rules = rules(&state)?.clone();
    let library = rules.library.clone();
    let detector = blocking(move || library.delete(&id)).await?;
    rules.detection.replace_rules(detector);
    Ok(StatusCode::NO_CONTENT)
}

/// Events a backtest runs over at most; past it the report says it was cut short.
pub const BACKTEST_MAX_EVENTS: usize = 200_000;

/// Runs a rule over the stored events of a time range (`?from=&to=`, default the last
/// 24 hours; the caller's facilities only) and reports what it would have found.
pub async fn backtest(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let (from, to) = params::backtest_range(raw.as_deref(), OffsetDateTime::now_utc())?;
    let library = rules(&state)?.library.clone();
    let rule = {
        let library = library.clone();
        let id = id.clone();
        blocking(move || library.rule(&id)).await?
    };
    // Newest first, as the store pages them; run oldest first.
    let mut pages = Vec::new();
    let mut query = EventQuery {
        from: Some(from),
        to: Some(to),
        limit: params::MAX_LIMIT,
        scope: caller.scope(),
        ..EventQuery::default()
    };
    let mut events = 0;
    let truncated = loop {
        let page = state.store.query(query.clone()).await?;
        events += page.events.len();
        let next = page.next_cursor;
        pages.push(page.events);
        match next {
            Some(_) if events >= BACKTEST_MAX_EVENTS => break true,
            Some(cursor) => query.cursor = Some(cursor),
            None => break false,
        }
    };
    let report = tokio::task::spawn_blocking(move || {
        let (mut detector, _) = evident_detect::Detector::from_dir(library.dir())?;
        let oldest_first = pages.into_iter().rev().flat_map(|page| {
            page.into_iter()
                .rev()
                .filter_map(|stored| serde_json::from_slice::<Value>(&stored.bytes).ok())
        });
        Ok::<_, std::io::Error>(evident_detect::backtest::run(
            &mut detector,
            &id,
            oldest_first,
        ))
    })
    .await
    .map_err(|_| ApiError::Internal)?
    .map_err(|e| {
        tracing::error!(error = %e, "backtest cannot read the rules directory");
        ApiError::Unavailable("the rules directory cannot be read".into())
    })?;
    let firings = shown_firings(&state, &caller, &report.firings).await?;
    Ok(Json(json!({
        "rule": rule.info,
        "from": crate::routes::rfc3339(from),
        "to": crate::routes::rfc3339(to),
        "events": report.events,
        "fired": report.fired,
        "firings": firings,
        "truncated": truncated,
    })))
}

/// A backtest's firings as `caller` sees them: group keys in the clear for keys with the
/// personal-data permission (from the events they fired on), by pseudonym for the others.
async fn shown_firings(
    state: &AppState,
    caller: &Caller,
    firings: &[evident_detect::backtest::Firing],
) -> Result<Vec<Value>, ApiError> {
    let evidence: Vec<Vec<uuid::Uuid>> = firings
        .iter()
        .map(|f| {
            f.event_id
                .as_deref()
                .and_then(|id| uuid::Uuid::parse_str(id).ok())
                .into_iter()
                .collect()
        })
        .collect();
    let view = crate::privacy::View::new(state.privacy.as_ref(), caller);
    let groups = firings
        .iter()
        .zip(&evidence)
        .map(|(f, ids)| (f.group_key.as_str(), ids.as_slice()));
    let resolutions =
        crate::reveal::resolve(&view, groups, &state.reader(), &caller.scope()).await?;
    Ok(firings
        .iter()
        .map(|f| {
            let mut value = json!(f);
            if let Some(resolutions) = &resolutions {
                resolutions.reveal(&mut value);
            }
            value
        })
        .collect())
}

/// Runs a library operation (file I/O and rule compilation) off the async workers.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, LibraryError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(into_api)
}

fn into_api(error: LibraryError) -> ApiError {
    match error {
        LibraryError::Invalid(problems) => ApiError::InvalidBody(describe(&problems)),
        LibraryError::Conflict(reason) => ApiError::Conflict(reason),
        LibraryError::NotFound(id) => ApiError::NotFound(format!("no rule with id {id}")),
        LibraryError::Io { path, source } => {
            tracing::error!(path = %path.display(), error = %source, "rules directory");
            ApiError::Unavailable("the rules directory cannot be read or written".into())
        }
    }
}

/// The problems as one message: file, line and reason of each.
fn describe(problems: &[RuleProblem]) -> String {
    let each: Vec<String> = problems
        .iter()
        .map(|p| {
            let file = p
                .file
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
            match p.line {
                Some(line) => format!("{file} line {line}: {}", p.reason),
                None => format!("{file}: {}", p.reason),
            }
        })
        .collect();
    format!("the rule does not load: {}", each.join("; "))
}

//! `GET /api/v1/stats`: counts per group and a time series.

use super::rfc3339;
use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::params;
use crate::state::AppState;
use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// Answers a stats query.
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let mut query = params::stats_query(raw.as_deref(), OffsetDateTime::now_utc())?;
    query.scope = caller.scope();
    let (from, to, interval, group_by) =
        (query.from, query.to, query.interval, query.group_by.clone());
    let stats = state.store.stats(query).await?;
    let groups: Vec<Value> = stats
        .groups
        .iter()
        .map(|g| {
            let mut obj = Map::new();
            for (field, value) in group_by.iter().zip(&g.key) {
                obj.insert(
                    field.as_str().into(),
                    value.clone().map_or(Value::Null, Value::String),
                );
            }
            obj.insert("count".into(), g.count.into());
            obj.insert("first".into(), rfc3339(g.first));
            obj.insert("last".into(), rfc3339(g.last));
            Value::Object(obj)
        })
        .collect();
    let series: Vec<Value> = stats
        .series
        .iter()
        .map(|b| {
            let by_severity: Map<String, Value> = evident_model::Severity::ALL
                .iter()
                .zip(b.by_severity)
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (s.as_str().to_owned(), n.into()))
                .collect();
            json!({"start": rfc3339(b.start), "count": b.count, "by_severity": by_severity})
        })
        .collect();
    Ok(Json(json!({
        "from": rfc3339(from),
        "to": rfc3339(to),
        "interval_seconds": interval / 1_000_000,
        "group_by": group_by,
        "total": stats.total,
        "groups": groups,
        "series": series,
    })))
}

//! `GET /api/v1/stats/pipeline`: the admission pipeline's counters and queue depths.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use evident_pipeline::StatsSnapshot;

/// The seed's `getStats()`: received, processed, deduplicated, failed, rejected by reason,
/// queue size per priority, processing time per priority.
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<StatsSnapshot>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(state.pipeline.stats()))
}

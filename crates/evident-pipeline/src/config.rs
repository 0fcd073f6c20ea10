//! Tuning of the admission pipeline: per-priority batching knobs and queue bounds.

use crate::dedup::DedupConfig;
use evident_model::Priority;
use std::time::Duration;

/// Most events one commit takes by default.
const COMMIT_EVENTS: usize = 8_000;

/// Batching knobs of one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityKnobs {
    /// Most events of this priority one commit takes.
    pub max_batch: usize,
    /// Longest an event of this priority waits while more urgent work is queued; past it,
    /// the next commit takes it ahead of the more urgent work.
    pub max_wait: Duration,
}

/// Tuning of the whole admission pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Knobs per priority, indexed by [`Priority::rank`] (info first, critical last).
    pub knobs: [PriorityKnobs; 5],
    /// Most events one commit (one store transaction) takes; bounds how long a critical
    /// event can wait behind a commit already running.
    pub max_commit_events: usize,
    /// Queued events the pipeline holds at most.
    pub capacity_events: usize,
    /// Queued event bytes (canonical encoding) the pipeline holds at most.
    pub capacity_bytes: usize,
    /// Share of the capacity each priority may fill, indexed by rank: lower priorities
    /// are refused first, and what is above a priority's share stays reserved for more
    /// urgent events. Critical's share is always 1.0.
    pub share: [f64; 5],
    /// Deduplication of repeats.
    pub dedup: DedupConfig,
    /// How long refusals (429, 503) are counted before one `system.ingest.refused`
    /// record of them is stored.
    pub refusal_window: Duration,
}

impl Default for PipelineConfig {
    /// Defaults from measurement on a 2-core machine (see BENCHMARKS.md): under load a
    /// commit takes whatever is queued, up to 8,000 events, on either store. Each commit
    /// rewrites every index page it touches (the random event ids land all over their
    /// index), so big commits carry far more events per second than small ones (on the
    /// embedded store 1.9x the naive table against 1.0x with commits of 500; on
    /// PostgreSQL, where each commit also costs round trips and a WAL flush, as fast or
    /// faster than commits of 2,000 in every paired run); under light load commits stay
    /// small by themselves. Critical events do not wait behind a big commit: they are journaled
    /// first. Other events wait for the commit running when they arrive (about half a
    /// second at saturation on that machine).
    fn default() -> Self {
        let knobs = |max_batch, ms| PriorityKnobs {
            max_batch,
            max_wait: Duration::from_millis(ms),
        };
        Self {
            knobs: [
                knobs(COMMIT_EVENTS, 5_000),
                knobs(COMMIT_EVENTS, 2_000),
                knobs(COMMIT_EVENTS, 1_000),
                knobs(COMMIT_EVENTS, 250),
                knobs(COMMIT_EVENTS, 0),
            ],
            max_commit_events: COMMIT_EVENTS,
            capacity_events: 50_000,
            capacity_bytes: 64 * 1024 * 1024,
            share: [0.6, 0.7, 0.8, 0.9, 1.0],
            dedup: DedupConfig::default(),
            refusal_window: crate::refusals::DEFAULT_WINDOW,
        }
    }
}

impl PipelineConfig {
    /// The knobs of `priority`.
    pub fn knobs(&self, priority: Priority) -> PriorityKnobs {
        self.knobs[usize::from(priority.rank())]
    }

    /// Events a lane of `priority` may bring the queue up to.
    pub fn event_limit(&self, priority: Priority) -> usize {
        (self.capacity_events as f64 * self.share(priority)) as usize
    }

    /// Bytes a lane of `priority` may bring the queue up to.
    pub fn byte_limit(&self, priority: Priority) -> usize {
        (self.capacity_bytes as f64 * self.share(priority)) as usize
    }

    fn share(&self, priority: Priority) -> f64 {
        if priority == Priority::Critical {
            1.0
        } else {
            self.share[usize::from(priority.rank())].clamp(0.0, 1.0)
        }
    }
}

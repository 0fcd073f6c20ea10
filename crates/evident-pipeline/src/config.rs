//! Tuning of the admission pipeline: per-priority batching knobs and queue bounds.

use crate::dedup::DedupConfig;
use evident_model::Priority;
use std::time::Duration;

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
    /// Defaults from measurement on a 2-core machine (see BENCHMARKS.md): a commit of
    /// 1,000 events of the reference workload takes about 12 ms, so commits are capped at
    /// 500 events to keep a critical event's wait behind a running commit short.
    fn default() -> Self {
        let knobs = |max_batch, ms| PriorityKnobs {
            max_batch,
            max_wait: Duration::from_millis(ms),
        };
        Self {
            knobs: [
                knobs(500, 5_000),
                knobs(500, 2_000),
                knobs(500, 1_000),
                knobs(500, 250),
                knobs(500, 0),
            ],
            max_commit_events: 500,
            capacity_events: 50_000,
            capacity_bytes: 64 * 1024 * 1024,
            share: [0.6, 0.7, 0.8, 0.9, 1.0],
            dedup: DedupConfig::default(),
            refusal_window: crate::refusals::DEFAULT_WINDOW,
        }
    }
}

impl PipelineConfig {
    /// Defaults for a PostgreSQL store: commits of up to 2,000 events. Each commit there
    /// costs several round trips and a WAL flush, so bigger ones carry more events per
    /// second (about 19% more over HTTP on a 2-core machine, BENCHMARKS.md); critical
    /// events do not wait behind them, as they are journaled first.
    pub fn for_postgres() -> Self {
        let mut config = Self::default();
        for knobs in &mut config.knobs {
            knobs.max_batch = 2_000;
        }
        config.max_commit_events = 2_000;
        config
    }

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

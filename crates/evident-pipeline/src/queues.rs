//! The bounded priority lanes between admission and commit, and which events the next
//! commit takes.
//!
//! Plain data, no locking or waiting: the pipeline wraps it in a mutex. Rules:
//! - an event enters only while the queue, counting it, stays within its priority's share
//!   of the capacity (events and bytes), so lower priorities are refused first and the
//!   room above their shares stays free for more urgent events;
//! - a commit takes critical events alone whenever the first queued one has a submitter
//!   waiting for its answer: they never wait behind other events (critical events nobody
//!   waits on go first, with the rest);
//! - otherwise it takes, first, events that have waited past their priority's `max_wait`
//!   (oldest priority lanes first), then the most urgent events, each lane up to its
//!   `max_batch`, the whole up to `max_commit_events`.

use crate::config::PipelineConfig;
use crate::request::Pending;
use evident_model::{EncodedEvent, Priority};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// Events of one request and one priority, queued together.
pub(crate) struct Part {
    /// The events, in request order.
    pub events: Vec<EncodedEvent>,
    /// Each event's position in its request.
    pub slots: Vec<usize>,
    /// The request they belong to.
    pub request: Arc<Pending>,
    /// When they were queued.
    pub enqueued: Instant,
    /// Their priority.
    pub priority: Priority,
    /// Already durable in the critical journal: once stored, drop them from it; their
    /// submitter was answered when they were journaled.
    pub journaled: bool,
}

impl Part {
    fn bytes(&self) -> usize {
        self.events.iter().map(|e| e.bytes.len()).sum()
    }

    /// Splits off the events after the first `n`, as a part of the same request.
    fn split_off(&mut self, n: usize) -> Part {
        Part {
            events: self.events.split_off(n),
            slots: self.slots.split_off(n),
            request: self.request.clone(),
            enqueued: self.enqueued,
            priority: self.priority,
            journaled: self.journaled,
        }
    }
}

/// The lanes, one per priority, and what they hold.
#[derive(Default)]
pub(crate) struct Queues {
    lanes: [VecDeque<Part>; 5],
    lane_events: [usize; 5],
    events: usize,
    bytes: usize,
}

impl Queues {
    /// Whether one more event of `priority` and `bytes` size may enter.
    pub(crate) fn fits(&self, config: &PipelineConfig, priority: Priority, bytes: usize) -> bool {
        self.events < config.event_limit(priority)
            && self.bytes + bytes <= config.byte_limit(priority)
    }

    /// Reserves room for an event (called per admitted event before its part is pushed).
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.events += 1;
        self.bytes += bytes;
    }

    /// Queues a part whose events were reserved with [`Queues::reserve`].
    pub(crate) fn push(&mut self, part: Part) {
        let lane = usize::from(part.priority.rank());
        self.lane_events[lane] += part.events.len();
        self.lanes[lane].push_back(part);
    }

    /// Puts a part (its events reserved with [`Queues::reserve`]) at the front of its lane.
    pub(crate) fn push_front(&mut self, part: Part) {
        let lane = usize::from(part.priority.rank());
        self.lane_events[lane] += part.events.len();
        self.lanes[lane].push_front(part);
    }

    /// Events queued in total, and per lane (indexed by rank).
    pub(crate) fn depth(&self) -> (usize, usize, [usize; 5]) {
        (self.events, self.bytes, self.lane_events)
    }

    /// True when no part is queued (room may still be reserved for parts on their way).
    pub(crate) fn is_empty(&self) -> bool {
        self.lane_events.iter().all(|n| *n == 0)
    }

    /// Takes the parts the next commit writes (see the module docs for the rules).
    pub(crate) fn take_batch(&mut self, config: &PipelineConfig, now: Instant) -> Vec<Part> {
        let mut batch = Vec::new();
        let mut taken = [0usize; 5];
        let critical = usize::from(Priority::Critical.rank());
        // Critical events go alone, for the shortest wait, when someone waits for their
        // answer. Those nobody waits on (the service's own, or already journaled) gain
        // nothing from it; sent alone while the store fails, retry after retry, they
        // would starve every other lane.
        let alone = self.lanes[critical]
            .front()
            .is_some_and(|p| p.request.wants_answer());
        self.take_from(critical, config, &mut taken, &mut batch);
        if alone {
            return batch;
        }
        for lane in 0..critical {
            let overdue = self.lanes[lane]
                .front()
                .is_some_and(|p| now.duration_since(p.enqueued) >= config.knobs[lane].max_wait);
            if overdue {
                self.take_from(lane, config, &mut taken, &mut batch);
            }
        }
        for lane in (0..critical).rev() {
            self.take_from(lane, config, &mut taken, &mut batch);
        }
        batch
    }

    /// Moves events from the front of `lane` into `batch` within the lane's and the
    /// commit's limits; always takes at least one event when the batch is empty.
    fn take_from(
        &mut self,
        lane: usize,
        config: &PipelineConfig,
        taken: &mut [usize; 5],
        batch: &mut Vec<Part>,
    ) {
        loop {
            let in_batch: usize = taken.iter().sum();
            let room = config.knobs[lane]
                .max_batch
                .saturating_sub(taken[lane])
                .min(config.max_commit_events.saturating_sub(in_batch));
            let room = if in_batch == 0 { room.max(1) } else { room };
            let Some(mut part) = self.lanes[lane].pop_front() else {
                return;
            };
            if room == 0 {
                self.lanes[lane].push_front(part);
                return;
            }
            if part.events.len() > room {
                let rest = part.split_off(room);
                self.lanes[lane].push_front(rest);
            }
            let n = part.events.len();
            taken[lane] += n;
            self.lane_events[lane] -= n;
            self.events -= n;
            self.bytes -= part.bytes();
            batch.push(part);
        }
    }
}

#[cfg(test)]
mod tests;

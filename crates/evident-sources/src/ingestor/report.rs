//! What became of an input's events: one report for every source, which HTTP turns into
//! its answer and syslog into counters.

use evident_ingest::Rejection;
use evident_model::Priority;
use evident_pipeline::EventOutcome;

/// What became of one input.
#[derive(Debug, Default)]
pub struct Report {
    /// Events the input carried, valid or not.
    pub total: usize,
    /// The valid events, handed to the sink, in input order, with their outcome.
    pub taken: Vec<Taken>,
    /// Invalid events, with every rule each broke, in input order.
    pub rejected: Vec<Rejection>,
    /// The input line of each event by position (line-based inputs; empty otherwise).
    pub lines: Vec<usize>,
}

/// One valid event handed to the sink.
#[derive(Debug, Clone)]
pub struct Taken {
    /// Position in the input (0-based).
    pub index: usize,
    /// The event's id.
    pub id: uuid::Uuid,
    /// The priority it was queued at.
    pub priority: Priority,
    /// What became of it.
    pub outcome: EventOutcome,
}

/// The input as a whole, most serious first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some event could not be committed (the store failed): retry the input.
    Failed(String),
    /// Some events were refused because their priority's queue is full: retry those.
    Overloaded,
    /// Not one event of the input is valid.
    NoValidEvent,
    /// Every valid event is taken (stored, already stored, folded, dead-lettered or
    /// queued); invalid ones, if any, are in [`Report::rejected`].
    Accepted,
}

/// The report's events counted by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Newly stored (or durably journaled, for critical events).
    pub stored: usize,
    /// Their id was already stored: stored once, not again.
    pub duplicates: usize,
    /// Kept in the dead-letter table after the store kept refusing them.
    pub dead_lettered: usize,
    /// Queued, not yet committed (fire-and-forget inputs).
    pub queued: usize,
    /// Repeats folded into an earlier stored event by deduplication.
    pub folded: usize,
    /// Refused: their priority's queue was full.
    pub overloaded: usize,
    /// Not committed: the store failed.
    pub failed: usize,
    /// Refused: invalid.
    pub invalid: usize,
}

impl Counts {
    /// Events taken: every valid event but the overloaded and failed ones.
    pub fn accepted(&self) -> usize {
        self.stored + self.duplicates + self.dead_lettered + self.queued + self.folded
    }
}

impl Report {
    /// The input as a whole.
    pub fn verdict(&self) -> Verdict {
        let mut overloaded = false;
        for taken in &self.taken {
            match &taken.outcome {
                EventOutcome::Failed(reason) => return Verdict::Failed(reason.clone()),
                EventOutcome::Overloaded => overloaded = true,
                _ => {}
            }
        }
        if overloaded {
            Verdict::Overloaded
        } else if self.taken.is_empty() {
            Verdict::NoValidEvent
        } else {
            Verdict::Accepted
        }
    }

    /// The events counted by outcome.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            invalid: self.rejected.len(),
            ..Counts::default()
        };
        for taken in &self.taken {
            let slot = match taken.outcome {
                EventOutcome::Stored(_) | EventOutcome::Journaled => &mut counts.stored,
                EventOutcome::Duplicate => &mut counts.duplicates,
                EventOutcome::DeadLettered => &mut counts.dead_lettered,
                EventOutcome::Queued => &mut counts.queued,
                EventOutcome::Folded(_) => &mut counts.folded,
                EventOutcome::Overloaded => &mut counts.overloaded,
                EventOutcome::Failed(_) => &mut counts.failed,
            };
            *slot += 1;
        }
        counts
    }

    /// Positions of the events refused for overload, in input order (to retry them).
    pub fn overloaded(&self) -> impl Iterator<Item = usize> + '_ {
        self.taken
            .iter()
            .filter(|t| t.outcome == EventOutcome::Overloaded)
            .map(|t| t.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evident_ingest::FieldError;

    fn taken(index: usize, outcome: EventOutcome) -> Taken {
        Taken {
            index,
            id: uuid::Uuid::now_v7(),
            priority: Priority::Medium,
            outcome,
        }
    }

    #[test]
    fn a_store_failure_outranks_overload_which_outranks_success() {
        let mut report = Report {
            total: 3,
            taken: vec![
                taken(0, EventOutcome::Stored(1)),
                taken(1, EventOutcome::Overloaded),
            ],
            ..Report::default()
        };
        assert_eq!(report.verdict(), Verdict::Overloaded);
        assert_eq!(report.overloaded().collect::<Vec<_>>(), vec![1]);
        report
            .taken
            .push(taken(2, EventOutcome::Failed("disk full".into())));
        assert_eq!(report.verdict(), Verdict::Failed("disk full".into()));
        let counts = report.counts();
        assert_eq!((counts.stored, counts.overloaded, counts.failed), (1, 1, 1));
        assert_eq!(counts.accepted(), 1);
    }

    #[test]
    fn an_input_of_invalid_events_only_has_no_valid_event() {
        let report = Report {
            total: 1,
            rejected: vec![Rejection {
                index: 0,
                line: None,
                errors: vec![FieldError::new("type", "missing")],
            }],
            ..Report::default()
        };
        assert_eq!(report.verdict(), Verdict::NoValidEvent);
        assert_eq!(report.counts().invalid, 1);
    }
}

use super::*;
use crate::request::{EventOutcome, Pending};
use evident_model::Severity;
use std::time::Duration;

/// A part of a request whose submitter waits for the answer.
fn part(priority: Priority, n: usize, enqueued: Instant) -> Part {
    let (reply, _answer) = tokio::sync::oneshot::channel();
    part_with(priority, n, enqueued, Some(reply))
}

fn part_with(
    priority: Priority,
    n: usize,
    enqueued: Instant,
    reply: Option<tokio::sync::oneshot::Sender<Vec<EventOutcome>>>,
) -> Part {
    let events: Vec<EncodedEvent> = (0..n)
        .map(|i| evident_store::testsuite::event("a.b", i as i64, Severity::Info))
        .collect();
    let request = Arc::new(Pending::new(vec![None::<EventOutcome>; n], n, reply));
    Part {
        slots: (0..n).collect(),
        events,
        request,
        enqueued,
        priority,
        journaled: false,
    }
}

fn config() -> PipelineConfig {
    let mut c = PipelineConfig {
        max_commit_events: 10,
        ..PipelineConfig::default()
    };
    for k in &mut c.knobs {
        k.max_batch = 6;
    }
    c
}

fn enqueue(q: &mut Queues, part: Part) {
    for e in &part.events {
        q.reserve(e.bytes.len());
    }
    q.push(part);
}

fn count(batch: &[Part]) -> usize {
    batch.iter().map(|p| p.events.len()).sum()
}

#[test]
fn critical_events_nobody_waits_on_share_the_commit() {
    let c = config();
    let now = Instant::now();
    let mut q = Queues::default();
    enqueue(&mut q, part(Priority::Info, 3, now));
    // The service's own event, retried at the front of its lane while the store fails.
    enqueue(&mut q, part_with(Priority::Critical, 1, now, None));
    let batch = q.take_batch(&c, now);
    assert_eq!(count(&batch), 4, "the waiting info events are not starved");
    assert_eq!(
        batch[0].priority,
        Priority::Critical,
        "critical still first"
    );
}

#[test]
fn critical_events_are_taken_alone_and_first() {
    let c = config();
    let now = Instant::now();
    let mut q = Queues::default();
    for (p, n) in [
        (Priority::Info, 3),
        (Priority::Critical, 2),
        (Priority::High, 2),
    ] {
        enqueue(&mut q, part(p, n, now));
    }
    let batch = q.take_batch(&c, now);
    assert_eq!(count(&batch), 2, "only the critical events");
    assert_eq!(q.depth().2, [3, 0, 0, 2, 0]);
    let batch = q.take_batch(&c, now);
    assert_eq!(batch.len(), 2, "then high before info, together");
    assert_eq!(batch[0].events.len(), 2);
    assert!(q.is_empty());
}

#[test]
fn lanes_and_commits_respect_their_caps_and_split_parts() {
    let c = config();
    let now = Instant::now();
    let mut q = Queues::default();
    enqueue(&mut q, part(Priority::High, 8, now));
    enqueue(&mut q, part(Priority::Low, 12, now));
    let first = q.take_batch(&c, now);
    let sizes: Vec<usize> = first.iter().map(|p| p.events.len()).collect();
    assert_eq!(
        sizes,
        vec![6, 4],
        "high up to its max_batch (6), then low up to the commit cap (10)"
    );
    assert_eq!(q.depth().0, 10);
    let second = q.take_batch(&c, now);
    assert_eq!(
        count(&second),
        8,
        "the 2 high events left, then low up to its max_batch (6)"
    );
}

#[test]
fn an_event_waiting_past_max_wait_goes_ahead_of_more_urgent_work() {
    let mut c = config();
    c.knobs[usize::from(Priority::Info.rank())].max_wait = Duration::from_millis(100);
    c.knobs[usize::from(Priority::High.rank())].max_batch = 10;
    let start = Instant::now();
    let mut q = Queues::default();
    enqueue(&mut q, part(Priority::Info, 1, start));
    enqueue(&mut q, part(Priority::High, 20, start));
    let early = q.take_batch(&c, start);
    assert!(
        early.iter().all(|p| p.priority == Priority::High),
        "info not overdue yet: high fills the commit"
    );
    let late = q.take_batch(&c, start + Duration::from_millis(150));
    assert_eq!(
        late[0].priority,
        Priority::Info,
        "the overdue info event leads the next commit"
    );
    assert_eq!(count(&late), 10);
}

#[test]
fn lower_priorities_are_refused_first() {
    let c = PipelineConfig {
        capacity_events: 10,
        ..PipelineConfig::default()
    };
    let mut q = Queues::default();
    for _ in 0..6 {
        assert!(q.fits(&c, Priority::Info, 1));
        q.reserve(1);
    }
    assert!(!q.fits(&c, Priority::Info, 1), "info may fill 60%");
    assert!(q.fits(&c, Priority::Medium, 1));
    for _ in 0..3 {
        q.reserve(1);
    }
    assert!(!q.fits(&c, Priority::High, 1), "high may fill 90%");
    assert!(
        q.fits(&c, Priority::Critical, 1),
        "critical keeps the reserved room"
    );
    q.reserve(1);
    assert!(
        !q.fits(&c, Priority::Critical, 1),
        "but the queue stays bounded"
    );
}

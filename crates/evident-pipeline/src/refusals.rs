//! Refused ingest as audit evidence (IEC 62443-3-3 SR 2.9, audit storage capacity, and
//! SR 2.10, response to audit processing failures).
//!
//! Events refused for overload (429) or because the store failed (503) leave no event
//! behind on their own. Every refusal is counted here by reason, priority and API key;
//! once per window the counts become one `system.ingest.refused` record, stored and
//! followed (detection, streaming) like any other event. While the store is failing the
//! record waits in its lane and is committed once the store takes writes again.

use evident_model::{EncodedEvent, Outcome, Priority, Severity, service};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long refusals are counted before they are recorded, by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Why events were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Their priority's share of the queue was full (429).
    Overloaded,
    /// The request's bytes did not fit the in-flight budget; refused before the body was
    /// read, so their priority is unknown (429).
    InflightBudget,
    /// The store could not commit them (503).
    StoreFailed,
}

impl Reason {
    /// The name records and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Overloaded => "overloaded",
            Reason::InflightBudget => "inflight_budget",
            Reason::StoreFailed => "store_failed",
        }
    }
}

/// One group of the counts: reason, priority (unknown before the body is read) and key.
type Group = (Reason, Option<Priority>, Option<i64>);

/// Refusals counted since the last record.
#[derive(Default)]
pub(crate) struct Refusals {
    counting: Mutex<Counting>,
}

#[derive(Default)]
struct Counting {
    since: Option<OffsetDateTime>,
    counts: BTreeMap<Group, u64>,
}

impl Refusals {
    /// Counts `n` refusals of one group at `now`.
    pub(crate) fn count(
        &self,
        reason: Reason,
        priority: Option<Priority>,
        key: Option<i64>,
        n: u64,
        now: OffsetDateTime,
    ) {
        if n == 0 {
            return;
        }
        let mut counting = self.counting.lock().unwrap_or_else(PoisonError::into_inner);
        counting.since.get_or_insert(now);
        *counting.counts.entry((reason, priority, key)).or_default() += n;
    }

    /// The record of everything counted since the last one, ending at `now`; `None`
    /// when nothing was refused.
    pub(crate) fn take_record(&self, now: OffsetDateTime) -> Option<EncodedEvent> {
        let (since, counts) = {
            let mut counting = self.counting.lock().unwrap_or_else(PoisonError::into_inner);
            let since = counting.since.take()?;
            (since, std::mem::take(&mut counting.counts))
        };
        Some(record(since, now, &counts))
    }
}

fn record(
    since: OffsetDateTime,
    now: OffsetDateTime,
    counts: &BTreeMap<Group, u64>,
) -> EncodedEvent {
    let total: u64 = counts.values().sum();
    let store_failed = counts.keys().any(|(r, ..)| *r == Reason::StoreFailed);
    let lost_urgent = counts
        .keys()
        .any(|(_, p, _)| p.is_some_and(|p| p.rank() >= Priority::High.rank()));
    let groups: Vec<Value> = counts
        .iter()
        .map(|((reason, priority, key), count)| {
            json!({
                "reason": reason.as_str(),
                "priority": priority.map(Priority::as_str),
                "key": key,
                "count": count,
            })
        })
        .collect();
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for ((reason, ..), count) in counts {
        *by_reason.entry(reason.as_str()).or_default() += count;
    }
    let data = json!({
        "from": since.format(&Rfc3339).ok(),
        "to": now.format(&Rfc3339).ok(),
        "refused": total,
        "by_reason": by_reason,
        "groups": groups,
    });
    let severity = if store_failed || lost_urgent {
        Severity::High
    } else {
        Severity::Medium
    };
    let mut event = evident_model::service::record(
        service::INGEST_REFUSED,
        severity,
        Priority::High,
        data,
        now,
    );
    event.outcome = Outcome::Failure;
    event.compliance = vec!["iec62443:sr2.9".into(), "iec62443:sr2.10".into()];
    EncodedEvent::new(event)
}

/// Stores a `system.ingest.refused` record of the refusals counted in each window,
/// until the pipeline closes (the writer records the last window's as it stops).
pub(crate) async fn record_periodically(shared: Arc<crate::pipeline::Shared>) {
    // Short ticks, so the task (and the store it holds) goes soon after the pipeline closes.
    const TICK: Duration = Duration::from_millis(250);
    let window = shared.config.refusal_window;
    let mut window_start = Instant::now();
    while !shared.closed.load(Ordering::Acquire) {
        tokio::time::sleep(TICK.min(window)).await;
        if window_start.elapsed() < window {
            continue;
        }
        window_start = Instant::now();
        if let Some(record) = shared.refusals.take_record(time::OffsetDateTime::now_utc()) {
            crate::commit::raise(&shared, record, Priority::High);
            shared.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn refusals_are_counted_by_reason_priority_and_key_into_one_record() {
        let r = Refusals::default();
        let t0 = datetime!(2026-01-01 10:00:00 UTC);
        assert!(r.take_record(t0).is_none(), "nothing refused: no record");
        r.count(Reason::Overloaded, Some(Priority::Info), Some(7), 3, t0);
        r.count(Reason::Overloaded, Some(Priority::Info), Some(7), 2, t0);
        r.count(Reason::StoreFailed, Some(Priority::Medium), Some(8), 1, t0);
        r.count(Reason::InflightBudget, None, None, 4, t0);
        let record = r.take_record(t0 + time::Duration::minutes(1)).unwrap();
        let e = &record.event;
        assert_eq!(e.event_type, service::INGEST_REFUSED);
        assert!(e.service_record);
        assert_eq!(e.severity, Severity::High, "a store failure is high");
        assert_eq!(e.data["refused"], 10);
        assert_eq!(e.data["by_reason"]["overloaded"], 5);
        let groups = e.data["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 3);
        assert!(
            groups.contains(
                &json!({"reason": "overloaded", "priority": "info", "key": 7, "count": 5})
            )
        );
        assert!(groups.contains(
            &json!({"reason": "inflight_budget", "priority": null, "key": null, "count": 4})
        ));
        assert!(r.take_record(t0).is_none(), "counts start again");
    }
}

//! Backtests: one rule over stored events, as if they were arriving now.
//!
//! The rule runs in a fresh rule set (the whole rules directory, so a correlation finds
//! the rules it counts) over events in time order; only its own firings are reported.
//! Nothing is recorded: a backtest shows what a rule would have found.

use crate::rules::{Detector, Match, group_key};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Firings listed in a report at most (all are counted).
pub const MAX_LISTED: usize = 1000;

/// One firing in a backtest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Firing {
    /// The event it fired on.
    pub event_id: Option<String>,
    /// That event's time.
    pub time: Option<String>,
    /// The group it fired for (`field=value, ...`).
    pub group_key: String,
}

/// What a backtest found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Events the rule ran over.
    pub events: u64,
    /// How many times it fired.
    pub fired: u64,
    /// The first [`MAX_LISTED`] firings, oldest first.
    pub firings: Vec<Firing>,
}

/// Runs `events` (oldest first) through `detector`, reporting the firings of the rule
/// `rule_id` (its id, or title when it has none).
pub fn run(
    detector: &mut Detector,
    rule_id: &str,
    events: impl IntoIterator<Item = Value>,
) -> Report {
    let mut report = Report::default();
    for event in events {
        report.events += 1;
        let time = event["time"].as_str();
        let secs = time
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map_or(0, OffsetDateTime::unix_timestamp);
        let mine = detector
            .process(&event, secs)
            .into_iter()
            .filter(|m| is(m, rule_id));
        for m in mine {
            report.fired += 1;
            if report.firings.len() < MAX_LISTED {
                report.firings.push(Firing {
                    event_id: event["id"].as_str().map(str::to_owned),
                    time: time.map(str::to_owned),
                    group_key: group_key(&m.group),
                });
            }
        }
    }
    report
}

fn is(m: &Match, rule_id: &str) -> bool {
    m.rule_id.as_deref().unwrap_or(&m.title) == rule_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_rule_under_test_is_reported_in_time_order() {
        let yaml = "title: Failed login\nname: failed\nid: base\nlogsource: {product: evident}\ndetection:\n  s:\n    type: auth.login.failure\n  condition: s\n---\ntitle: Three\nid: three\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [actor.user_id]\n  timespan: 1m\n  condition: {gte: 3}\n---\ntitle: Any login\nid: any\nlogsource: {product: evident}\ndetection:\n  s:\n    type|startswith: auth.\n  condition: s\n";
        let (mut detector, report) = Detector::from_yaml("r.yml", yaml);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let events = (0..4).map(|i| {
            json!({"id": format!("e{i}"), "type": "auth.login.failure",
                   "time": format!("2026-01-01T00:00:{:02}Z", i * 10),
                   "actor": {"user_id": "kim"}})
        });
        let report = run(&mut detector, "three", events);
        assert_eq!((report.events, report.fired), (4, 2));
        assert_eq!(report.firings[0].event_id.as_deref(), Some("e2"));
        assert_eq!(report.firings[0].group_key, "actor.user_id=kim");
        assert_eq!(
            report.firings[1].time.as_deref(),
            Some("2026-01-01T00:00:30Z")
        );
    }
}

//! How long events are kept: a number of days per category, with overrides per event
//! type prefix. Both stores enforce it from [`crate::Maintenance::maintain`]: PostgreSQL by
//! dropping and trimming monthly partitions of each retention class, SQLite by deleting
//! expired events in small batches. [`spawn_maintenance`] runs it periodically.

use crate::Maintenance;
use evident_model::{Category, Event};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What one maintenance pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Events removed because their retention had passed.
    pub removed: u64,
    /// Partitions dropped whole (PostgreSQL).
    pub dropped_partitions: Vec<String>,
}

/// Runs [`Maintenance::maintain`] now and then every `every`, logging what retention
/// removed; a failed pass is logged and tried again at the next round.
pub fn spawn_maintenance(
    store: Arc<dyn Maintenance>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match store.maintain(time::OffsetDateTime::now_utc()).await {
                Ok(report) if report == RetentionReport::default() => {}
                Ok(report) => tracing::info!(
                    removed = report.removed,
                    dropped = ?report.dropped_partitions,
                    "retention enforced"
                ),
                Err(error) => tracing::warn!(%error, "store maintenance failed"),
            }
        }
    })
}

/// Days in seven years, the default for security-relevant categories.
const SEVEN_YEARS: u32 = 7 * 365 + 2;

/// Retention in days per category, and per type prefix (which wins; longest prefix
/// first). Every event gets a number of days; there is no "keep forever".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    categories: BTreeMap<Category, u32>,
    /// `(prefix, days)`, longest prefix first.
    types: Vec<(String, u32)>,
}

impl Default for RetentionPolicy {
    /// The seeds' defaults: security and authentication 7 years, manufacturing 2 years,
    /// performance (`perf.` types) 1 year, debug (`debug.` types) 30 days. Categories
    /// the seeds do not name are kept 7 years too: nothing is dropped by surprise.
    fn default() -> Self {
        let categories = Category::ALL
            .into_iter()
            .map(|c| {
                let days = match c {
                    Category::Manufacturing => 2 * 365,
                    _ => SEVEN_YEARS,
                };
                (c, days)
            })
            .collect();
        Self {
            categories,
            types: vec![("debug.".into(), 30), ("perf.".into(), 365)],
        }
        .sorted()
    }
}

impl RetentionPolicy {
    /// The default policy with `categories` and `types` (prefix → days) overriding it.
    /// Fails on a zero retention, which would drop events as they arrive.
    pub fn with_overrides(
        categories: impl IntoIterator<Item = (Category, u32)>,
        types: impl IntoIterator<Item = (String, u32)>,
    ) -> Result<Self, String> {
        let mut policy = Self::default();
        for (category, days) in categories {
            if days == 0 {
                return Err(format!(
                    "retention of category {} is 0 days",
                    category.as_str()
                ));
            }
            policy.categories.insert(category, days);
        }
        for (prefix, days) in types {
            if days == 0 {
                return Err(format!("retention of types `{prefix}` is 0 days"));
            }
            policy.types.retain(|(p, _)| *p != prefix);
            policy.types.push((prefix, days));
        }
        Ok(policy.sorted())
    }

    fn sorted(mut self) -> Self {
        self.types
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        self
    }

    /// Days `event` is kept after its event time.
    pub fn days_for(&self, event: &Event) -> u32 {
        self.types
            .iter()
            .find(|(prefix, _)| event.event_type.starts_with(prefix.as_str()))
            .map(|(_, days)| *days)
            .or_else(|| self.categories.get(&event.category).copied())
            .unwrap_or(SEVEN_YEARS)
    }

    /// `(type prefix, days)` overrides, longest prefix first.
    pub fn type_rules(&self) -> &[(String, u32)] {
        &self.types
    }

    /// `(category, days)` for every category.
    pub fn category_rules(&self) -> impl Iterator<Item = (Category, u32)> + '_ {
        self.categories.iter().map(|(c, d)| (*c, *d))
    }

    /// Every distinct number of days the policy hands out (the retention classes).
    pub fn classes(&self) -> Vec<u32> {
        let mut days: Vec<u32> = self
            .categories
            .values()
            .chain(self.types.iter().map(|(_, d)| d))
            .copied()
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::event;
    use evident_model::Severity;

    #[test]
    fn defaults_follow_the_seeds() {
        let p = RetentionPolicy::default();
        assert_eq!(
            p.days_for(&event("auth.login", 0, Severity::Info).event),
            SEVEN_YEARS
        );
        assert_eq!(
            p.days_for(&event("station.operation", 0, Severity::Info).event),
            730
        );
        assert_eq!(
            p.days_for(&event("debug.trace", 0, Severity::Info).event),
            30
        );
        assert_eq!(
            p.days_for(&event("perf.sample", 0, Severity::Info).event),
            365
        );
        assert_eq!(p.classes(), vec![30, 365, 730, SEVEN_YEARS]);
    }

    #[test]
    fn longest_type_prefix_wins_and_zero_is_refused() {
        let p = RetentionPolicy::with_overrides(
            [(Category::Authentication, 400)],
            [("debug.keep.".to_string(), 90)],
        )
        .unwrap();
        assert_eq!(
            p.days_for(&event("auth.login", 0, Severity::Info).event),
            400
        );
        assert_eq!(
            p.days_for(&event("debug.keep.x", 0, Severity::Info).event),
            90
        );
        assert_eq!(
            p.days_for(&event("debug.other", 0, Severity::Info).event),
            30
        );
        let err = RetentionPolicy::with_overrides([], [("x.".to_string(), 0)]).unwrap_err();
        assert!(err.contains("x."), "{err}");
    }
}

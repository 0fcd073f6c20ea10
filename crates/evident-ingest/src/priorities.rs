//! Priority overrides per event type, from the configuration.

use evident_model::Priority;
use std::collections::HashMap;

/// Which priority events of a type get when they name none themselves.
/// Precedence: the event's own `priority`, then these rules, then its severity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriorityRules {
    exact: HashMap<String, Priority>,
    /// `(prefix ending with '.', priority)`, longest prefix first.
    prefixes: Vec<(String, Priority)>,
}

impl PriorityRules {
    /// Rules from `(pattern, priority)` pairs; a pattern is a type (`auth.login.failure`)
    /// or a prefix ending in `.*` (`threat.*`).
    pub fn new(rules: impl IntoIterator<Item = (String, Priority)>) -> Self {
        let mut out = Self::default();
        for (pattern, priority) in rules {
            match pattern.strip_suffix('*') {
                Some(prefix) => out.prefixes.push((prefix.to_owned(), priority)),
                None => {
                    out.exact.insert(pattern, priority);
                }
            }
        }
        out.prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        out
    }

    /// The configured priority of `event_type`, if any rule matches.
    pub fn priority_for(&self, event_type: &str) -> Option<Priority> {
        self.exact.get(event_type).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(p, _)| event_type.starts_with(p.as_str()))
                .map(|(_, pr)| *pr)
        })
    }

    /// True when no rule is configured.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_longest_prefix_beats_shorter() {
        let rules = PriorityRules::new([
            ("threat.*".to_owned(), Priority::Critical),
            ("threat.scan.*".to_owned(), Priority::Low),
            ("threat.scan.port".to_owned(), Priority::Medium),
        ]);
        assert_eq!(
            rules.priority_for("threat.sql.injection"),
            Some(Priority::Critical)
        );
        assert_eq!(rules.priority_for("threat.scan.ping"), Some(Priority::Low));
        assert_eq!(
            rules.priority_for("threat.scan.port"),
            Some(Priority::Medium)
        );
        assert_eq!(rules.priority_for("user.login"), None);
    }
}

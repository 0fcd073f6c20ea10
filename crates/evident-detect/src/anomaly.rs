//! Statistical rules, an evident extension to Sigma: rate anomalies per group.
//!
//! A statistical rule counts the matches of detection rules per group in fixed
//! intervals of event time, and fires when an interval's count stands out against the
//! rolling baseline of the group's previous intervals:
//!
//! ```yaml
//! title: Quality-check failure spike per station
//! id: 5d0e8a52-3c1b-4f7e-9a64-2b7c1d9e0a70
//! level: medium
//! anomaly:
//!     rules: [evident_quality_check_failed]   # detection rules counted, by id or name
//!     group-by: [data.station_id]             # one series per value (none: one series)
//!     interval: 10m                           # bucket length: s, m, h or d
//!     baseline: 24                            # previous buckets compared against (2..=1000)
//!     min-baseline: 6                         # buckets seen before it may fire (default: baseline / 4, at least 2)
//!     threshold: 3                            # standard deviations above the baseline mean
//!     min-count: 5                            # and at least this many in the bucket
//! ```
//!
//! It fires on the event that makes the current bucket's count reach both
//! `mean + threshold × stddev` of the baseline (empty buckets count as 0) and
//! `min-count`, and exceeds the mean; at most once per group and bucket. Limits: at
//! most [`MAX_SERIES`] groups across all statistical rules (past it, the group seen
//! longest ago is forgotten); events older than the current bucket only correct the
//! baseline, they never fire; like Sigma's `generate: false`, the counted rules do not
//! report their own matches.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Groups (series) kept across all statistical rules.
pub const MAX_SERIES: usize = 100_000;

/// A statistical rule as written.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AnomalyDoc {
    pub title: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub anomaly: Spec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    pub rules: Vec<String>,
    #[serde(default, rename = "group-by")]
    pub group_by: Vec<String>,
    pub interval: String,
    #[serde(default = "default_baseline")]
    pub baseline: usize,
    #[serde(default, rename = "min-baseline")]
    pub min_baseline: Option<usize>,
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default = "default_min_count", rename = "min-count")]
    pub min_count: u64,
}

fn default_baseline() -> usize {
    24
}
fn default_threshold() -> f64 {
    3.0
}
fn default_min_count() -> u64 {
    5
}

/// A checked statistical rule.
#[derive(Debug, Clone)]
pub(crate) struct AnomalyRule {
    pub id: String,
    pub title: String,
    pub level: Option<String>,
    pub tags: Vec<String>,
    pub counts: Vec<String>,
    pub group_by: Vec<String>,
    interval: i64,
    baseline: usize,
    min_baseline: usize,
    threshold: f64,
    min_count: u64,
}

impl AnomalyDoc {
    /// Checks the parameters; the reason when they do not make a rule.
    pub fn check(self) -> Result<AnomalyRule, String> {
        let s = self.anomaly;
        let interval = parse_interval(&s.interval).ok_or_else(|| {
            format!(
                "anomaly interval {:?} is not a duration such as 30s, 10m, 1h or 1d",
                s.interval
            )
        })?;
        if !(2..=1000).contains(&s.baseline) {
            return Err(format!(
                "anomaly baseline {} must be 2 to 1000 intervals",
                s.baseline
            ));
        }
        let min_baseline = s.min_baseline.unwrap_or((s.baseline / 4).max(2));
        if !(1..=s.baseline).contains(&min_baseline) {
            return Err(format!(
                "anomaly min-baseline {min_baseline} must be 1 to baseline ({})",
                s.baseline
            ));
        }
        if !(s.threshold.is_finite() && s.threshold >= 0.0) {
            return Err(
                "anomaly threshold must be a number of standard deviations, 0 or more".into(),
            );
        }
        if s.rules.is_empty() {
            return Err("anomaly rules must name at least one detection rule".into());
        }
        Ok(AnomalyRule {
            id: self.id.unwrap_or_else(|| self.title.clone()),
            title: self.title,
            level: self.level,
            tags: self.tags,
            counts: s.rules,
            group_by: s.group_by,
            interval,
            baseline: s.baseline,
            min_baseline,
            threshold: s.threshold,
            min_count: s.min_count.max(1),
        })
    }
}

/// `<n><unit>`, unit s, m, h or d, as seconds; positive, at most a year.
fn parse_interval(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].trim().parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let total = n.checked_mul(seconds)?;
    (1..=366 * 86_400).contains(&total).then_some(total)
}

/// One group's counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Series {
    bucket: i64,
    count: u64,
    fired: bool,
    history: VecDeque<u64>,
}

/// A statistical rule that fired.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spike {
    pub rule: usize,
    pub count: u64,
    pub mean: f64,
}

/// The statistical rules and their series.
#[derive(Debug, Default)]
pub(crate) struct Anomalies {
    pub rules: Vec<AnomalyRule>,
    series: HashMap<(usize, String), Series>,
}

/// Saved series: `(rule id, group key, series)`, so they survive rule reloads.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Saved(Vec<(String, String, Series)>);

impl Anomalies {
    pub fn new(rules: Vec<AnomalyRule>) -> Self {
        Self {
            rules,
            series: HashMap::new(),
        }
    }

    /// Counts one match for statistical rule `rule`, group `group`, at `time` (Unix
    /// seconds); the spike if this makes the bucket stand out.
    pub fn observe(&mut self, rule: usize, group: String, time: i64) -> Option<Spike> {
        if self.series.len() >= MAX_SERIES && !self.series.contains_key(&(rule, group.clone())) {
            self.forget_oldest();
        }
        let r = &self.rules[rule];
        let bucket = time.div_euclid(r.interval);
        let s = self.series.entry((rule, group)).or_insert_with(|| Series {
            bucket,
            count: 0,
            fired: false,
            history: VecDeque::new(),
        });
        if bucket < s.bucket {
            // Late: it belongs to the baseline, if still there.
            let back = usize::try_from(s.bucket - bucket).unwrap_or(usize::MAX);
            if let Some(i) = s.history.len().checked_sub(back) {
                s.history[i] += 1;
            }
            return None;
        }
        if bucket > s.bucket {
            s.history.push_back(s.count);
            let empty = usize::try_from(bucket - s.bucket - 1).unwrap_or(usize::MAX);
            for _ in 0..empty.min(r.baseline) {
                s.history.push_back(0);
            }
            while s.history.len() > r.baseline {
                s.history.pop_front();
            }
            s.bucket = bucket;
            s.count = 0;
            s.fired = false;
        }
        s.count += 1;
        if s.fired || s.history.len() < r.min_baseline {
            return None;
        }
        let n = s.history.len() as f64;
        let mean = s.history.iter().sum::<u64>() as f64 / n;
        let var = s
            .history
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let limit = (mean + r.threshold * var.sqrt()).max(r.min_count as f64);
        let count = s.count as f64;
        if count >= limit && count > mean {
            s.fired = true;
            return Some(Spike {
                rule,
                count: s.count,
                mean,
            });
        }
        None
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .series
            .iter()
            .min_by_key(|(_, s)| s.bucket)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.series.remove(&key);
        }
    }

    /// Series held.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn save(&self) -> Saved {
        Saved(
            self.series
                .iter()
                .map(|((rule, group), s)| (self.rules[*rule].id.clone(), group.clone(), s.clone()))
                .collect(),
        )
    }

    /// Restores saved series of the rules still loaded.
    pub fn restore(&mut self, saved: Saved) {
        let index: HashMap<&str, usize> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        for (id, group, series) in saved.0 {
            if let Some(&i) = index.get(id.as_str()) {
                self.series.insert((i, group), series);
            }
        }
    }
}

/// A statistical document found in a file: its first line, and the rule or why not.
pub(crate) type Found = (usize, Result<AnomalyDoc, String>);

/// Splits a rule file into its statistical rules and the rest: the statistical
/// documents come back parsed, with their first line, and the text keeps every other
/// document in place (statistical ones blanked line for line, so line numbers hold).
pub(crate) fn split(text: &str) -> (String, Vec<Found>) {
    let mut rest = String::with_capacity(text.len());
    let mut found = Vec::new();
    let mut doc: Vec<&str> = Vec::new();
    let mut start = 1;
    let mut flush = |doc: &mut Vec<&str>, start: usize, rest: &mut String| {
        let statistical = doc.iter().any(|l| l.starts_with("anomaly:"));
        if statistical {
            let body = doc.join("\n");
            let parsed = serde_saphyr::from_str::<AnomalyDoc>(&body).map_err(|e| e.to_string());
            found.push((start, parsed));
            // An empty document is an error to Sigma: its separator goes with it.
            if start > 1 && rest.ends_with("---\n") {
                rest.truncate(rest.len() - 4);
                rest.push('\n');
            }
            for _ in doc.iter() {
                rest.push('\n');
            }
        } else {
            for line in doc.iter() {
                rest.push_str(line);
                rest.push('\n');
            }
        }
        doc.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" {
            flush(&mut doc, start, &mut rest);
            rest.push_str("---\n");
            start = i + 2;
        } else {
            doc.push(line);
        }
    }
    flush(&mut doc, start, &mut rest);
    (rest, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(baseline: usize, threshold: f64, min_count: u64) -> AnomalyRule {
        AnomalyRule {
            id: "r".into(),
            title: "r".into(),
            level: None,
            tags: vec![],
            counts: vec!["base".into()],
            group_by: vec![],
            interval: 60,
            baseline,
            min_baseline: 3,
            threshold,
            min_count,
        }
    }

    /// Feeds `per_minute[i]` events in minute `i`; the minutes where it fired.
    fn fire_minutes(a: &mut Anomalies, group: &str, per_minute: &[u64]) -> Vec<usize> {
        let mut fired = Vec::new();
        for (minute, &n) in per_minute.iter().enumerate() {
            for k in 0..n {
                let t = minute as i64 * 60 + (k as i64 % 60);
                if a.observe(0, group.into(), t).is_some() {
                    fired.push(minute);
                }
            }
        }
        fired
    }

    #[test]
    fn a_spike_above_the_baseline_fires_once_per_bucket() {
        let mut a = Anomalies::new(vec![rule(10, 3.0, 5)]);
        // A steady 2 per minute with a 12 in minute 5: it fires, at the fifth event (the
        // baseline's spread is 0, so min-count decides). After that spike the baseline
        // is noisier (mean 3, stddev 3): minute 12 fires at its twelfth event, and 12
        // right after another spike does not.
        let per_minute = [2, 2, 2, 2, 2, 12, 2, 2, 2, 2, 2, 2, 30, 12];
        let fired = fire_minutes(&mut a, "st-1", &per_minute);
        assert_eq!(fired, vec![5, 12]);
    }

    #[test]
    fn no_firing_before_the_baseline_fills_nor_below_min_count() {
        let mut a = Anomalies::new(vec![rule(10, 0.0, 5)]);
        assert_eq!(
            fire_minutes(&mut a, "g", &[50, 50, 50]),
            Vec::<usize>::new()
        );
        let mut b = Anomalies::new(vec![rule(10, 0.0, 5)]);
        assert_eq!(
            fire_minutes(&mut b, "g", &[0, 0, 0, 4]),
            Vec::<usize>::new()
        );
        let mut c = Anomalies::new(vec![rule(10, 0.0, 5)]);
        // Quiet minutes count as zeros: a first burst after silence fires at min-count.
        assert_eq!(fire_minutes(&mut c, "g", &[1, 0, 0, 0, 0, 6]), vec![5]);
    }

    #[test]
    fn groups_are_separate_and_state_round_trips() {
        let mut a = Anomalies::new(vec![rule(10, 3.0, 5)]);
        fire_minutes(&mut a, "quiet", &[1, 1, 1, 1]);
        fire_minutes(&mut a, "busy", &[20, 20, 20, 20]);
        let saved = serde_json::to_string(&a.save()).unwrap();
        let mut b = Anomalies::new(vec![rule(10, 3.0, 5)]);
        b.restore(serde_json::from_str(&saved).unwrap());
        // Minute 4: ten for quiet is a spike; ten for busy is not.
        let quiet: Vec<_> = (0..10)
            .filter_map(|k| b.observe(0, "quiet".into(), 240 + k))
            .collect();
        let busy: Vec<_> = (0..10)
            .filter_map(|k| b.observe(0, "busy".into(), 240 + k))
            .collect();
        assert_eq!(quiet.len(), 1);
        assert!(busy.is_empty());
    }

    #[test]
    fn parameters_are_checked_with_reasons() {
        let doc =
            |extra: &str| format!("title: t\nanomaly:\n    rules: [a]\n    interval: 10m\n{extra}");
        let check = |text: &str| {
            serde_saphyr::from_str::<AnomalyDoc>(text)
                .map_err(|e| e.to_string())
                .and_then(AnomalyDoc::check)
        };
        assert!(check(&doc("")).is_ok());
        for (extra, needle) in [
            ("    baseline: 1\n", "baseline"),
            ("    threshold: -1\n", "threshold"),
            ("    min-baseline: 99\n", "min-baseline"),
            ("    colour: red\n", "colour"),
        ] {
            let err = check(&doc(extra)).unwrap_err();
            assert!(err.contains(needle), "{extra}: {err}");
        }
        let err = check("title: t\nanomaly:\n    rules: [a]\n    interval: soon\n").unwrap_err();
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn files_split_into_statistical_and_sigma_documents_keeping_lines() {
        let text = "title: a\ndetection: {s: {x: 1}, condition: s}\n---\ntitle: b\nanomaly:\n    rules: [a]\n    interval: 1m\n---\ntitle: c\n";
        let (rest, found) = split(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 4);
        assert_eq!(found[0].1.as_ref().unwrap().title, "b");
        assert_eq!(rest.lines().count(), text.lines().count());
        assert_eq!(rest.lines().nth(8), Some("title: c"));
        assert!(!rest.contains("anomaly"));
        assert_eq!(rest.matches("---").count(), 1, "{rest}");
        let (first, _) = split("title: b\nanomaly: {}\n---\ntitle: c\n");
        assert_eq!(first, "\n\n---\ntitle: c\n");
    }
}

//! Loading Sigma rule files into a [`Detector`], and what it reports about them.
//!
//! Every file is parsed on its own and every rule compiled on its own, so one bad rule
//! (or file) is reported — file, line where it can be told, and reason — and the others
//! load regardless.

use crate::anomaly::{self, Anomalies, AnomalyRule};
use crate::fields;
use rsigma_eval::{
    CorrelationConfig, CorrelationEngine, CorrelationEventMode, Engine, EvaluationResult,
    Event as RuleSource, EventValue, LogSourceExtractor, parse_pipeline,
};
use rsigma_parser::{CorrelationRule, LogSource, SigmaCollection, SigmaRule, parse_sigma_yaml};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// A rule, or a whole file, that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleProblem {
    /// The file it is in.
    pub file: PathBuf,
    /// The line the problem is on, when it can be told.
    pub line: Option<usize>,
    /// The rule's title, when it got that far.
    pub rule: Option<String>,
    /// Why it could not be loaded.
    pub reason: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule \"{rule}\"")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What loading found.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Rule files read.
    pub files: usize,
    /// Detection rules loaded.
    pub loaded: usize,
    /// Correlation rules loaded.
    pub correlations: usize,
    /// Statistical rules loaded (see [`crate::anomaly`]).
    pub statistical: usize,
    /// Everything that could not be loaded.
    pub problems: Vec<RuleProblem>,
    /// The rules that loaded, detection rules first.
    pub rules: Vec<RuleInfo>,
}

/// A loaded rule, as the rules API lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleInfo {
    /// The rule's id (its title when it has none).
    pub id: String,
    /// The rule's title.
    pub title: String,
    /// `detection`, `correlation` or `statistical`.
    pub kind: &'static str,
    /// The rule's level, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The file it was loaded from.
    pub file: PathBuf,
}

/// One rule an event fired.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Match {
    /// The rule's id, if it has one.
    pub rule_id: Option<String>,
    /// The rule's title.
    pub title: String,
    /// The rule's level (`informational` .. `critical`), if set.
    pub level: Option<String>,
    /// The rule's tags (ATT&CK techniques and the like).
    pub tags: Vec<String>,
    /// For a correlation rule: the group it fired for, `(field, value)` pairs in the
    /// rule's `group-by` order. For a detection rule: the values of the fields its
    /// `evident.group-by` attribute names, if it has one.
    pub group: Vec<(String, String)>,
    /// For a correlation rule: ids of the events in its window (the latest ones, up to
    /// [`CORRELATION_EVIDENCE`]). Empty for a detection rule (the event itself).
    pub events: Vec<String>,
    /// Whether a correlation or statistical rule fired (otherwise a detection rule).
    pub correlation: bool,
}

/// Event ids a correlation keeps per group as evidence.
pub const CORRELATION_EVIDENCE: usize = 100;

/// Rules' attribute naming the fields a detection rule's findings are grouped by.
pub const GROUP_BY_ATTRIBUTE: &str = "evident.group-by";

/// A loaded rule set: detection rules, and correlation rules over their matches.
pub struct Detector {
    engine: CorrelationEngine,
    /// Rules (by id, or title when they have none) that only feed correlations: Sigma's
    /// `generate: false`, the default. Their own matches are not reported.
    feeds_only: HashSet<String>,
    /// Statistical rules and their series.
    anomalies: Anomalies,
    /// Detection rule (id, or title) → the statistical rules that count it.
    counted_by: HashMap<String, Vec<usize>>,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.engine.detection_rule_count())
            .field("correlations", &self.engine.correlation_rule_count())
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Loads every `.yml` / `.yaml` file under `dir` (recursively, in name order).
    /// Fails only when the directory cannot be read; bad rules are in the report.
    pub fn from_dir(dir: &Path) -> std::io::Result<(Detector, LoadReport)> {
        Ok(Self::from_files(&rule_files(dir)?))
    }

    /// Loads the given rule files.
    pub fn from_files(files: &[PathBuf]) -> (Detector, LoadReport) {
        let mut loader = Loader::new();
        for file in files {
            match std::fs::read_to_string(file) {
                Ok(text) => loader.add(file, &text),
                Err(e) => loader.report.problems.push(RuleProblem {
                    file: file.clone(),
                    line: None,
                    rule: None,
                    reason: format!("cannot read: {e}"),
                }),
            }
        }
        loader.finish()
    }

    /// Loads rules from `(name, YAML text)` pairs, each reported as coming from `name`.
    pub fn from_sources(sources: &[(&str, &str)]) -> (Detector, LoadReport) {
        let mut loader = Loader::new();
        for (name, text) in sources {
            loader.add(Path::new(name), text);
        }
        loader.finish()
    }

    /// Loads rules from YAML text, reported as coming from `name`.
    pub fn from_yaml(name: &str, text: &str) -> (Detector, LoadReport) {
        let mut loader = Loader::new();
        loader.add(Path::new(name), text);
        loader.finish()
    }

    /// How many detection rules are loaded.
    pub fn rule_count(&self) -> usize {
        self.engine.detection_rule_count()
    }

    /// The detection rules `event` fires on its own (an evident event, or any JSON such
    /// as a Windows event log record; see [`fields`]); no correlation state changes.
    pub fn evaluate(&self, event: &Value) -> Vec<Match> {
        let view = fields::view(event);
        let event = fields::RuleEvent::new(&view);
        self.matches(self.engine.evaluate(&event), &event)
    }

    /// Feeds `event`, which happened at `time_secs` (Unix seconds, event time), through
    /// detection and correlation: the detection rules it fires, and the correlation
    /// rules whose condition it completes (a count reached within the timespan, say).
    pub fn process(&mut self, event: &Value, time_secs: i64) -> Vec<Match> {
        let view = fields::view(event);
        self.process_source(&fields::RuleEvent::new(&view), time_secs)
    }

    /// [`Detector::process`] for a committed event as the pipeline holds it, at its own
    /// event time: the same matches as for its canonical JSON, without parsing it again
    /// (see [`crate::typed`]).
    pub fn process_event(&mut self, event: &evident_model::Event) -> Vec<Match> {
        let time_secs = event.time.unix_timestamp();
        self.process_source(&crate::typed::TypedEvent::new(event), time_secs)
    }

    fn process_source(&mut self, event: &impl RuleSource, time_secs: i64) -> Vec<Match> {
        let results = self.engine.process_event_at(event, time_secs);
        let spikes = self.count_for_statistical_rules(&results, event, time_secs);
        let mut found = self.matches(results, event);
        found.extend(spikes);
        found
    }

    /// Feeds the detection matches statistical rules count; what they report.
    fn count_for_statistical_rules(
        &mut self,
        results: &[EvaluationResult],
        view: &impl RuleSource,
        time_secs: i64,
    ) -> Vec<Match> {
        if self.counted_by.is_empty() {
            return Vec::new();
        }
        let mut rules: Vec<usize> = results
            .iter()
            .filter(|r| !r.is_correlation())
            .filter_map(|r| {
                self.counted_by
                    .get(r.header.rule_id.as_ref().unwrap_or(&r.header.rule_title))
            })
            .flatten()
            .copied()
            .collect();
        rules.sort_unstable();
        rules.dedup();
        let mut found = Vec::new();
        for i in rules {
            let rule = &self.anomalies.rules[i];
            let group = values(&rule.group_by, view);
            let key = group_key(&group);
            if let Some(spike) = self.anomalies.observe(i, key, time_secs) {
                let rule = &self.anomalies.rules[spike.rule];
                tracing::debug!(rule = %rule.id, count = spike.count, mean = spike.mean, "rate anomaly");
                found.push(Match {
                    rule_id: Some(rule.id.clone()),
                    title: rule.title.clone(),
                    level: rule.level.clone(),
                    tags: rule.tags.clone(),
                    group,
                    events: Vec::new(),
                    correlation: true,
                });
            }
        }
        found
    }

    /// Open correlation windows and statistical series, per group: what detection holds
    /// in memory (bounded: about 100,000 of each).
    pub fn state_entries(&self) -> usize {
        self.engine.state_count() + self.anomalies.series_count()
    }

    /// How many correlation rules are loaded.
    pub fn correlation_count(&self) -> usize {
        self.engine.correlation_rule_count()
    }

    /// The correlation state (open windows, counters, statistical series) as JSON, to
    /// restore with [`Detector::restore_state`] after a restart.
    pub fn save_state(&self) -> Vec<u8> {
        let state = serde_json::json!({
            "sigma": self.engine.export_state(),
            "statistical": self.anomalies.save(),
        });
        serde_json::to_vec(&state).unwrap_or_default()
    }

    /// Restores state saved by [`Detector::save_state`]. State of rules no longer loaded
    /// is dropped; an unreadable or incompatible snapshot is an error and changes nothing.
    pub fn restore_state(&mut self, saved: &[u8]) -> Result<(), String> {
        #[derive(serde::Deserialize)]
        struct Saved {
            sigma: rsigma_eval::CorrelationSnapshot,
            #[serde(default)]
            statistical: anomaly::Saved,
        }
        let saved: Saved = serde_json::from_slice(saved)
            .map_err(|e| format!("unreadable correlation state: {e}"))?;
        if !self.engine.import_state(saved.sigma) {
            return Err("correlation state from an incompatible version".into());
        }
        self.anomalies.restore(saved.statistical);
        Ok(())
    }
}

impl Detector {
    fn matches(&self, results: Vec<EvaluationResult>, view: &impl RuleSource) -> Vec<Match> {
        results
            .into_iter()
            .filter(|r| {
                r.is_correlation()
                    || !self
                        .feeds_only
                        .contains(r.header.rule_id.as_ref().unwrap_or(&r.header.rule_title))
            })
            .map(|r| {
                let (group, events, correlation) = match r.as_correlation() {
                    Some(c) => (
                        c.group_key.clone(),
                        c.event_refs
                            .iter()
                            .flatten()
                            .filter_map(|e| e.id.clone())
                            .collect(),
                        true,
                    ),
                    None => (
                        group_of(&r.header.custom_attributes, view),
                        Vec::new(),
                        false,
                    ),
                };
                Match {
                    rule_id: r.header.rule_id,
                    title: r.header.rule_title,
                    level: r.header.level.map(|l| l.as_str().to_owned()),
                    tags: r.header.tags,
                    group,
                    events,
                    correlation,
                }
            })
            .collect()
    }
}

/// The rules that only feed correlations: referenced (by id or name) by a correlation
/// with `generate: false` and by none with `generate: true`.
fn feeds_only(collection: &SigmaCollection) -> HashSet<String> {
    let refs = |generate: bool| -> HashSet<&str> {
        collection
            .correlations
            .iter()
            .filter(|c| c.generate == generate)
            .flat_map(|c| c.rules.iter().map(String::as_str))
            .collect()
    };
    let (hidden, shown) = (refs(false), refs(true));
    let named = |rule: &SigmaRule, names: &HashSet<&str>| {
        [rule.id.as_deref(), rule.name.as_deref()]
            .into_iter()
            .flatten()
            .any(|n| names.contains(n))
    };
    collection
        .rules
        .iter()
        .filter(|rule| named(rule, &hidden) && !named(rule, &shown))
        .map(|rule| rule.id.clone().unwrap_or_else(|| rule.title.clone()))
        .collect()
}

/// The values of the fields a detection rule's [`GROUP_BY_ATTRIBUTE`] names.
fn group_of(
    attributes: &std::collections::HashMap<String, Value>,
    view: &impl RuleSource,
) -> Vec<(String, String)> {
    let fields: Vec<String> = match attributes.get(GROUP_BY_ATTRIBUTE) {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return Vec::new(),
    };
    values(&fields, view)
}

/// `(field, value as text)` for each of `fields` in `view` (empty text when absent).
fn values(fields: &[String], view: &impl RuleSource) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|field| {
            let value = view.get_field(field).map_or_else(String::new, |v| match v {
                EventValue::Str(s) => s.into_owned(),
                other => other.to_json().to_string(),
            });
            (field.clone(), value)
        })
        .collect()
}

/// A group as one key: `field=value` pairs joined by `, `.
pub fn group_key(group: &[(String, String)]) -> String {
    group
        .iter()
        .map(|(field, value)| format!("{field}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses files one by one, then compiles every rule at once.
struct Loader {
    rules: Vec<(PathBuf, usize, SigmaRule)>,
    correlations: Vec<(PathBuf, usize, CorrelationRule)>,
    statistical: Vec<(PathBuf, usize, AnomalyRule)>,
    report: LoadReport,
}

impl Loader {
    fn new() -> Self {
        Self {
            rules: Vec::new(),
            correlations: Vec::new(),
            statistical: Vec::new(),
            report: LoadReport::default(),
        }
    }

    fn add(&mut self, file: &Path, text: &str) {
        self.report.files += 1;
        let (text, statistical) = anomaly::split(text);
        for (line, parsed) in statistical {
            match parsed.and_then(anomaly::AnomalyDoc::check) {
                Ok(rule) => self.statistical.push((file.to_owned(), line, rule)),
                Err(reason) => self.report.problems.push(RuleProblem {
                    file: file.to_owned(),
                    line: Some(line),
                    rule: None,
                    reason,
                }),
            }
        }
        let text = text.as_str();
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_end() == "---")
        {
            return;
        }
        let collection = match parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                let reason = e.to_string();
                self.report.problems.push(RuleProblem {
                    file: file.to_owned(),
                    line: line_of(text, &reason, None),
                    rule: None,
                    reason,
                });
                return;
            }
        };
        for reason in collection.errors {
            self.report.problems.push(RuleProblem {
                file: file.to_owned(),
                line: line_of(text, &reason, None),
                rule: None,
                reason,
            });
        }
        for mut rule in collection.correlations {
            let line = line_of(text, "", Some(&rule.title)).unwrap_or(1);
            crate::compat::correlation_rule(&mut rule);
            self.correlations.push((file.to_owned(), line, rule));
        }
        for mut rule in collection.rules {
            let line = line_of(text, "", Some(&rule.title)).unwrap_or(1);
            crate::compat::detection_rule(&mut rule);
            self.rules.push((file.to_owned(), line, rule));
        }
    }

    fn finish(self) -> (Detector, LoadReport) {
        let Loader {
            rules,
            correlations,
            statistical,
            mut report,
        } = self;
        // The mapping is a constant of this crate, tested to parse.
        let pipeline = parse_pipeline(fields::MAPPING).ok();
        let mut problem = |file: &PathBuf, line: usize, title: &str, reason: String| {
            report.problems.push(RuleProblem {
                file: file.clone(),
                line: Some(line),
                rule: Some(title.to_owned()),
                reason,
            })
        };
        // Rules are tried on a scratch engine first, so each failure is reported alone;
        // the good ones then go into the real engine in one batch, which builds the
        // candidate index once (added one by one, the index stays slow: 6x fewer events/s).
        let mut scratch = match &pipeline {
            Some(p) => Engine::new_with_pipeline(p.clone()),
            None => Engine::new(),
        };
        let failed: std::collections::HashMap<usize, String> = scratch
            .add_rules(rules.iter().map(|(_, _, rule)| rule))
            .into_iter()
            .map(|(i, e)| (i, e.to_string()))
            .collect();
        let mut good = SigmaCollection::new();
        let mut infos = Vec::new();
        for (i, (file, line, rule)) in rules.iter().enumerate() {
            match failed.get(&i) {
                Some(reason) => problem(file, *line, &rule.title, reason.clone()),
                None => {
                    infos.push(RuleInfo {
                        id: rule.id.clone().unwrap_or_else(|| rule.title.clone()),
                        title: rule.title.clone(),
                        kind: "detection",
                        level: rule.level.map(|l| l.as_str().to_owned()),
                        tags: rule.tags.clone(),
                        file: file.clone(),
                    });
                    good.rules.push(rule.clone());
                }
            }
        }
        let loaded = good.rules.len();
        // A correlation can fail on its references: check each against the good rules.
        let one_by_one = |collection: &SigmaCollection| {
            let mut engine = new_engine(&pipeline);
            for rule in &collection.rules {
                // Compiled once already, above: this does not fail.
                if let Err(e) = engine.add_rule(rule) {
                    tracing::error!(rule = %rule.title, error = %e, "rule failed to load twice");
                }
            }
            engine
        };
        if !correlations.is_empty() {
            let mut check = one_by_one(&good);
            for (file, line, rule) in &correlations {
                match check.add_correlation(rule) {
                    Ok(()) => {
                        infos.push(RuleInfo {
                            id: rule.id.clone().unwrap_or_else(|| rule.title.clone()),
                            title: rule.title.clone(),
                            kind: "correlation",
                            level: rule.level.map(|l| l.as_str().to_owned()),
                            tags: rule.tags.clone(),
                            file: file.clone(),
                        });
                        good.correlations.push(rule.clone())
                    }
                    Err(e) => problem(file, *line, &rule.title, e.to_string()),
                }
            }
        }
        let correlated = good.correlations.len();
        let mut engine = new_engine(&pipeline);
        if let Err(e) = engine.add_collection(&good) {
            // Every part loaded on its own above; keep them all rather than lose any.
            tracing::error!(error = %e, "the rule set did not load in one batch");
            engine = one_by_one(&good);
            for rule in &good.correlations {
                if let Err(e) = engine.add_correlation(rule) {
                    tracing::error!(rule = %rule.title, error = %e, "correlation failed to load twice");
                }
            }
        }
        // Statistical rules count detection rules that loaded, by id or name.
        let mut key_of: HashMap<&str, String> = HashMap::new();
        for rule in &good.rules {
            let key = rule.id.clone().unwrap_or_else(|| rule.title.clone());
            for name in [rule.id.as_deref(), rule.name.as_deref()]
                .into_iter()
                .flatten()
            {
                key_of.insert(name, key.clone());
            }
        }
        let mut counted_by: HashMap<String, Vec<usize>> = HashMap::new();
        let mut kept = Vec::new();
        for (file, line, rule) in statistical {
            let missing: Vec<&str> = rule
                .counts
                .iter()
                .map(String::as_str)
                .filter(|name| !key_of.contains_key(name))
                .collect();
            if !missing.is_empty() {
                report.problems.push(RuleProblem {
                    file,
                    line: Some(line),
                    rule: Some(rule.title.clone()),
                    reason: format!(
                        "anomaly counts rules that are not loaded: {}",
                        missing.join(", ")
                    ),
                });
                continue;
            }
            for name in &rule.counts {
                counted_by
                    .entry(key_of[name.as_str()].clone())
                    .or_default()
                    .push(kept.len());
            }
            infos.push(RuleInfo {
                id: rule.id.clone(),
                title: rule.title.clone(),
                kind: "statistical",
                level: rule.level.clone(),
                tags: rule.tags.clone(),
                file,
            });
            kept.push(rule);
        }
        report.loaded = loaded;
        report.correlations = correlated;
        report.statistical = kept.len();
        report.rules = infos;
        let mut feeds_only = feeds_only(&good);
        feeds_only.extend(counted_by.keys().cloned());
        let detector = Detector {
            engine,
            feeds_only,
            anomalies: Anomalies::new(kept),
            counted_by,
        };
        (detector, report)
    }
}

/// Entries one correlation group's window keeps at most.
const MAX_GROUP_ENTRIES: usize = 10_000;

/// A correlation engine with evident's field mapping and logsource pruning.
fn new_engine(pipeline: &Option<rsigma_eval::Pipeline>) -> CorrelationEngine {
    let mut engine = CorrelationEngine::new(CorrelationConfig {
        // Ids of the events in each window, as the finding's evidence.
        correlation_event_mode: CorrelationEventMode::Refs,
        max_correlation_events: CORRELATION_EVIDENCE,
        // Bounds each group's window; past it the oldest entries go (undercounting).
        max_group_entries: Some(MAX_GROUP_ENTRIES),
        ..CorrelationConfig::default()
    });
    if let Some(p) = pipeline {
        engine.add_pipeline(p.clone());
    }
    engine.set_logsource_extractor(Some(
        LogSourceExtractor::new()
            .with_field_names(fields::PRODUCT_FIELD, "@service", "@category")
            .with_defaults(LogSource {
                product: Some(fields::EVIDENT_PRODUCT.into()),
                ..LogSource::default()
            }),
    ));
    engine
}

/// The `.yml` / `.yaml` files under `dir`, recursively, in name order.
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    collect_rule_files(dir, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect_rule_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rule_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The line a problem is on: the one YAML's message names (`line N`), else the first
/// line holding a quoted word of the message (an unknown modifier or field, say), else
/// the line of the rule's title.
fn line_of(text: &str, reason: &str, title: Option<&str>) -> Option<usize> {
    if let Some(n) = reason
        .split("line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
    {
        return Some(n);
    }
    let quoted = reason
        .split(['\'', '"', '`'])
        .skip(1)
        .step_by(2)
        .filter(|w| !w.trim().is_empty());
    for word in quoted {
        if let Some(i) = text.lines().position(|l| l.contains(word)) {
            return Some(i + 1);
        }
    }
    let title = title?;
    text.lines()
        .position(|l| l.trim_start().starts_with("title:") && l.contains(title))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BRUTE: &str = r#"
title: Failed login
id: 6b0f3f6e-0000-4000-8000-000000000001
level: medium
tags: [attack.credential-access, attack.t1110]
logsource: {product: evident}
detection:
  selection:
    type: auth.login.failure
    User|startswith: adm
  condition: selection
"#;

    #[test]
    fn the_field_mapping_parses() {
        parse_pipeline(fields::MAPPING).expect("the mapping is a valid pipeline");
    }

    #[test]
    fn a_rule_fires_on_evident_events_through_the_mapping() {
        let (detector, report) = Detector::from_yaml("brute.yml", BRUTE);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.loaded, 1);
        let hit = json!({"type": "auth.login.failure", "actor": {"user_id": "admin"}});
        let matches = detector.evaluate(&hit);
        assert_eq!(matches.len(), 1);
        assert_eq!(matches[0].title, "Failed login");
        assert_eq!(matches[0].level.as_deref(), Some("medium"));
        assert!(matches[0].tags.contains(&"attack.t1110".to_owned()));
        let miss = json!({"type": "auth.login.failure", "actor": {"user_id": "bob"}});
        assert!(detector.evaluate(&miss).is_empty());
        let other = json!({"type": "auth.login.success", "actor": {"user_id": "admin"}});
        assert!(detector.evaluate(&other).is_empty());
    }

    const BRUTE_FORCE: &str = r#"
title: Failed login
id: 6b0f3f6e-0000-4000-8000-000000000010
name: failed_login
logsource: {product: evident}
detection:
  selection:
    type: auth.login.failure
  condition: selection
---
title: Five failed logins in five minutes for one user
id: 6b0f3f6e-0000-4000-8000-000000000011
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [actor.user_id]
  timespan: 5m
  condition:
    gte: 5
level: high
"#;

    fn fired(detector: &mut Detector, user: &str, at: i64) -> bool {
        let event = json!({"type": "auth.login.failure", "actor": {"user_id": user}});
        detector
            .process(&event, at)
            .iter()
            .any(|m| m.title.starts_with("Five failed logins"))
    }

    #[test]
    fn an_event_count_correlation_fires_within_its_timespan_per_group() {
        let (mut detector, report) = Detector::from_yaml("brute.yml", BRUTE_FORCE);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!((report.loaded, report.correlations), (1, 1));
        let t0 = 1_700_000_000;
        // Four for alice and four for bob, interleaved: neither reaches five.
        for i in 0..4 {
            assert!(!fired(&mut detector, "alice", t0 + i * 10));
            assert!(!fired(&mut detector, "bob", t0 + i * 10 + 5));
        }
        assert!(
            fired(&mut detector, "alice", t0 + 60),
            "alice's fifth within 5 minutes"
        );
        // Carol's five are spread over more than five minutes: never five in a window.
        for i in 0..5 {
            assert!(!fired(&mut detector, "carol", t0 + i * 100));
        }
    }

    #[test]
    fn a_rule_that_only_feeds_a_correlation_is_not_reported_and_the_group_is() {
        let (mut detector, _) = Detector::from_yaml("brute.yml", BRUTE_FORCE);
        let event = json!({"id": "e5", "type": "auth.login.failure", "actor": {"user_id": "al"}});
        for i in 0..4 {
            assert_eq!(detector.process(&event, 1_700_000_000 + i), vec![]);
        }
        let fifth = detector.process(&event, 1_700_000_010);
        assert_eq!(fifth.len(), 1, "{fifth:?}");
        assert!(fifth[0].correlation);
        assert_eq!(fifth[0].group, vec![("actor.user_id".into(), "al".into())]);
        assert!(fifth[0].events.contains(&"e5".to_owned()), "{fifth:?}");
        // With `generate: true` the base rule reports its own matches too.
        let generating = BRUTE_FORCE.replace("level: high", "level: high\ngenerate: true");
        let (mut detector, report) = Detector::from_yaml("brute.yml", &generating);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let own = detector.process(&event, 1_700_000_000);
        assert_eq!(own.len(), 1);
        assert!(!own[0].correlation);
        // So does a rule with `evident.group-by`, grouped by those fields.
        let grouped = "title: Denied\nevident.group-by: [actor.ip, data.path]\nlogsource: {product: evident}\ndetection:\n  sel:\n    type: access.denied\n  condition: sel\n";
        let (detector, report) = Detector::from_yaml("denied.yml", grouped);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let denied = json!({"type": "access.denied", "actor": {"ip": "10.1.1.1"}, "data": {"path": "/admin"}});
        let m = detector.evaluate(&denied);
        assert_eq!(
            m[0].group,
            vec![
                ("actor.ip".into(), "10.1.1.1".into()),
                ("data.path".into(), "/admin".into())
            ]
        );
    }

    #[test]
    fn correlation_state_stays_bounded_however_many_groups_appear() {
        let (mut detector, _) = Detector::from_yaml("brute.yml", BRUTE_FORCE);
        let t0 = 1_700_000_000;
        for i in 0..110_000 {
            let event =
                json!({"type": "auth.login.failure", "actor": {"user_id": format!("u{i}")}});
            detector.process(&event, t0 + i / 1000);
        }
        let held = detector.state_entries();
        assert!(
            (50_000..=100_000).contains(&held),
            "110,000 users, one open window each at most 100,000: {held}"
        );
        // Still counting: a user who fails five times now is caught.
        assert!((0..5).any(|k| fired(&mut detector, "late", t0 + 200 + k)));
    }

    #[test]
    fn rules_for_other_products_do_not_run_on_evident_events() {
        // Zeek's rule fires on anything lacking its field: not on evident's events.
        let zeek = "title: Not Zeek\nlogsource: {product: zeek, service: rdp}\ndetection:\n  sel:\n    id.orig_h|cidr: 10.0.0.0/8\n  condition: not sel\n";
        let generic = "title: Any failure\nlogsource: {category: authentication}\ndetection:\n  sel:\n    type: auth.login.failure\n  condition: sel\n";
        let (detector, report) = Detector::from_yaml("r.yml", &format!("{zeek}---\n{generic}"));
        assert_eq!(report.loaded, 2, "{:?}", report.problems);
        let event = json!({"type": "auth.login.failure"});
        let titles: Vec<String> = detector
            .evaluate(&event)
            .into_iter()
            .map(|m| m.title)
            .collect();
        assert_eq!(
            titles,
            vec!["Any failure".to_owned()],
            "rules without a product still run"
        );
    }

    #[test]
    fn a_bad_rule_is_named_with_its_line_and_the_others_still_load() {
        let text = format!(
            "{BRUTE}---\ntitle: Broken\nlogsource: {{product: evident}}\ndetection:\n  selection:\n    type|nosuchmodifier: x\n  condition: selection\n"
        );
        let (detector, report) = Detector::from_yaml("mixed.yml", &text);
        assert_eq!(report.loaded, 1, "the good rule loads");
        assert_eq!(detector.rule_count(), 1);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        let problem = &report.problems[0];
        assert_eq!(problem.file, PathBuf::from("mixed.yml"));
        assert!(problem.reason.contains("nosuchmodifier"), "{problem}");
        let line = problem.line.expect("a line");
        assert!(
            text.lines()
                .nth(line - 1)
                .unwrap()
                .contains("nosuchmodifier"),
            "line {line} of {text}"
        );
    }

    #[test]
    fn broken_yaml_is_reported_with_its_line() {
        let (_, report) = Detector::from_yaml("bad.yml", "title: x\ndetection: [unclosed\n");
        assert_eq!(report.loaded, 0);
        let problem = &report.problems[0];
        assert!(problem.line.is_some(), "{problem}");
        assert!(problem.to_string().starts_with("bad.yml:"), "{problem}");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const TOKENS: &[&str] = &[
            "selection",
            "filter",
            "and",
            "or",
            "not",
            "(",
            ")",
            "1 of",
            "all of",
            "them",
            "sel*",
            "missing",
            "|",
            "count()",
            ">",
            "5",
        ];
        const MODIFIERS: &[&str] = &[
            "",
            "|contains",
            "|startswith",
            "|endswith",
            "|all",
            "|re",
            "|cidr",
            "|base64",
            "|base64offset|contains",
            "|windash",
            "|gt",
            "|lte",
            "|exists",
            "|fieldref",
            "|cased",
            "|contains|all",
            "|bogus",
            "|re|i",
            "|",
        ];

        fn rule() -> impl Strategy<Value = String> {
            (
                proptest::sample::select(MODIFIERS),
                "[ -~]{0,12}",
                proptest::collection::vec(proptest::sample::select(TOKENS), 0..7),
            )
                .prop_map(|(modifier, value, condition)| {
                    format!(
                        "title: Fuzzed\nlogsource: {{product: evident}}\ndetection:\n  selection:\n    data.field{modifier}: {value:?}\n  filter:\n    type: x\n  condition: {}\n",
                        condition.join(" ")
                    )
                })
        }

        proptest! {
            /// Whatever the modifier, value and condition, a rule either loads or is
            /// reported with its file, and loading never panics.
            #[test]
            fn generated_rules_load_or_are_reported(text in rule()) {
                let (detector, report) = Detector::from_yaml("fuzz.yml", &text);
                prop_assert_eq!(detector.rule_count(), report.loaded);
                prop_assert!(report.loaded == 1 || !report.problems.is_empty(), "{}", text);
                for p in &report.problems {
                    prop_assert_eq!(&p.file, &PathBuf::from("fuzz.yml"));
                    prop_assert!(!p.reason.is_empty());
                }
                // A loaded rule evaluates any event without panicking.
                let _matches = detector.evaluate(&json!({"type": "x", "data": {"field": "abc"}}));
            }

            /// Arbitrary text is refused with a reason or loads, never panics.
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
                let (detector, report) = Detector::from_yaml("any.yml", &text);
                prop_assert_eq!(detector.rule_count(), report.loaded);
            }
        }
    }
}

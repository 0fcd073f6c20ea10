//! Compatibility with the public SigmaHQ rule set: every rule loads, and every event of
//! Sigma's regression data fires the rule it was recorded for.
//!
//! Runs on the copy in `tests/sigmahq/` (the rules the regression data covers, with the
//! data; SigmaHQ's Detection Rule License is in that folder), or on a whole SigmaHQ
//! checkout named by `EVIDENT_SIGMA_DIR`.

use evident_detect::Detector;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn sigma_dir() -> PathBuf {
    std::env::var_os("EVIDENT_SIGMA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigmahq"))
}

/// The `rules*` folders of a SigmaHQ checkout.
fn rule_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("rules"))
        })
        .collect();
    dirs.sort();
    dirs
}

fn files_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_named(&path, name, out);
        } else if path.file_name().is_some_and(|n| n == name) {
            out.push(path);
        }
    }
}

#[derive(serde::Deserialize)]
struct Info {
    rule_metadata: Vec<RuleRef>,
}

#[derive(serde::Deserialize)]
struct RuleRef {
    id: String,
}

#[test]
fn sigmahq_rules_load_and_regression_events_fire_their_rule() {
    let root = sigma_dir();
    let mut files = Vec::new();
    for dir in rule_dirs(&root) {
        files.extend(evident_detect::rules::rule_files(&dir).unwrap());
    }
    files.sort();
    assert!(!files.is_empty(), "no rules under {}", root.display());
    let (detector, report) = Detector::from_files(&files);
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    let loaded_share = report.loaded as f64 / (report.loaded + problems.len()) as f64;
    assert!(
        problems.is_empty(),
        "{} of {} rules did not load:\n{}",
        problems.len(),
        report.loaded + problems.len(),
        problems.join("\n")
    );

    let mut infos = Vec::new();
    files_named(&root.join("regression_data"), "info.yml", &mut infos);
    infos.sort();
    assert!(
        !infos.is_empty(),
        "no regression data under {}",
        root.display()
    );
    let mut missed = BTreeMap::new();
    let mut events = 0;
    for info_path in &infos {
        let info: Info =
            serde_saphyr::from_str(&std::fs::read_to_string(info_path).unwrap()).unwrap();
        let rule_id = &info.rule_metadata[0].id;
        let dir = info_path.parent().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // A file holds one record, a list of them, or several one after another.
            let mut records = Vec::new();
            for value in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>()
            {
                match value.unwrap() {
                    serde_json::Value::Array(items) => records.extend(items),
                    one => records.push(one),
                }
            }
            let fired = records.iter().any(|r| {
                detector
                    .evaluate(r)
                    .iter()
                    .any(|m| m.rule_id.as_deref() == Some(rule_id.as_str()))
            });
            events += 1;
            if !fired {
                missed.insert(path.display().to_string(), rule_id.clone());
            }
        }
    }
    eprintln!(
        "{} rules loaded ({:.1}%); {} of {events} regression events fired their rule",
        report.loaded,
        loaded_share * 100.0,
        events - missed.len()
    );
    assert!(
        missed.is_empty(),
        "{} of {events} regression events did not fire their rule:\n{:#?}",
        missed.len(),
        missed
    );
}

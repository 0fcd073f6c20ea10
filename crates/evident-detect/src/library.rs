//! The rules directory the service detects with: what it holds, changing it through the
//! API, and noticing when its files change.
//!
//! A rule lives in a file; a file may hold several rules (a correlation and the rules it
//! counts, say). The API works on files: `GET` a rule shows the file that holds it,
//! `PUT` replaces that file (or writes `<id>.yml` for a new rule), `DELETE` removes it
//! when the rule is alone in it. A change is checked against the whole directory before
//! it is written, so a rule that cannot load (or a correlation whose rules are missing)
//! is refused with its line and reason, and the rules already running are untouched.

use crate::pack::DEFAULT_PACK;
use crate::rules::{Detector, LoadReport, RuleInfo, RuleProblem, rule_files};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

/// Why a change to the rules directory was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The rules do not load; nothing was written.
    #[error("the rule does not load: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<RuleProblem>),
    /// The request does not fit what is there.
    #[error("{0}")]
    Conflict(String),
    /// No rule with that id.
    #[error("no rule with id {0}")]
    NotFound(String),
    /// The directory cannot be read or written.
    #[error("rules directory {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// The rules directory.
pub struct Library {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    report: LoadReport,
    seen: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

/// A rule and the text of the file that holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleSource {
    /// The rule.
    #[serde(flatten)]
    pub info: RuleInfo,
    /// The whole file's YAML.
    pub yaml: String,
}

impl Library {
    /// Creates `dir` holding the default pack, unless it exists. True if it was created.
    pub fn seed_default_pack(dir: &Path) -> Result<bool, LibraryError> {
        if dir.try_exists().map_err(io(dir))? {
            return Ok(false);
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, text) in DEFAULT_PACK {
            write_atomically(&dir.join(name), text)?;
        }
        Ok(true)
    }

    /// Loads every rule file under `dir`.
    pub fn open(dir: &Path) -> Result<(Library, Detector), LibraryError> {
        let seen = fingerprint(dir)?;
        let (detector, report) = Detector::from_dir(dir).map_err(io(dir))?;
        let library = Library {
            dir: dir.to_owned(),
            state: Mutex::new(State { report, seen }),
        };
        Ok((library, detector))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the last load found: the rules running and the problems.
    pub fn report(&self) -> LoadReport {
        self.state().report.clone()
    }

    /// The loaded rule with `id`, and its file's text.
    pub fn rule(&self, id: &str) -> Result<RuleSource, LibraryError> {
        let info = find(&self.state().report, id)?;
        let yaml = std::fs::read_to_string(&info.file).map_err(io(&info.file))?;
        Ok(RuleSource { info, yaml })
    }

    /// Replaces the file holding rule `id` with `yaml` (or writes `<id>.yml` for a new
    /// rule), after checking that `yaml` defines `id` and loads with the rest of the
    /// directory. Returns the new rule set and whether the rule is new.
    pub fn put(&self, id: &str, yaml: &str) -> Result<(Detector, bool), LibraryError> {
        let mut state = self.state();
        let existing = state.report.rules.iter().find(|r| r.id == id).cloned();
        let file = match &existing {
            Some(info) => info.file.clone(),
            None => self.dir.join(format!("{}.yml", safe_file_name(id)?)),
        };
        let (detector, report) = self.load_with(&file, Some(yaml))?;
        let mine: Vec<RuleProblem> = report
            .problems
            .iter()
            .filter(|p| p.file == file)
            .cloned()
            .collect();
        if !mine.is_empty() {
            return Err(LibraryError::Invalid(mine));
        }
        if !report.rules.iter().any(|r| r.id == id && r.file == file) {
            return Err(LibraryError::Conflict(format!(
                "the YAML defines no rule with id {id} (the path names the rule it holds)"
            )));
        }
        let clash = report
            .rules
            .iter()
            .filter(|mine| mine.file == file)
            .find_map(|mine| {
                report
                    .rules
                    .iter()
                    .find(|o| o.id == mine.id && o.file != file)
            });
        if let Some(other) = clash {
            return Err(LibraryError::Conflict(format!(
                "rule {} is already defined in {}",
                other.id,
                other.file.display()
            )));
        }
        write_atomically(&file, yaml)?;
        state.seen = fingerprint(&self.dir)?;
        state.report = report;
        Ok((detector, existing.is_none()))
    }

    /// Removes rule `id`'s file, if the rule is alone in it; returns the new rule set.
    pub fn delete(&self, id: &str) -> Result<Detector, LibraryError> {
        let mut state = self.state();
        let info = find(&state.report, id)?;
        let others: Vec<&str> = state
            .report
            .rules
            .iter()
            .filter(|r| r.file == info.file && r.id != id)
            .map(|r| r.id.as_str())
            .collect();
        if !others.is_empty() {
            return Err(LibraryError::Conflict(format!(
                "{} also holds {}; PUT the file without this rule instead",
                info.file.display(),
                others.join(", ")
            )));
        }
        let (detector, report) = self.load_with(&info.file, None)?;
        std::fs::remove_file(&info.file).map_err(io(&info.file))?;
        state.seen = fingerprint(&self.dir)?;
        state.report = report;
        Ok(detector)
    }

    /// Reloads the directory if any rule file was added, changed or removed since the
    /// last load; the new rule set and what its load found.
    pub fn reload_if_changed(&self) -> Result<Option<(Detector, LoadReport)>, LibraryError> {
        let now = fingerprint(&self.dir)?;
        let mut state = self.state();
        if now == state.seen {
            return Ok(None);
        }
        let (detector, report) = Detector::from_dir(&self.dir).map_err(io(&self.dir))?;
        state.seen = now;
        state.report = report.clone();
        Ok(Some((detector, report)))
    }

    /// Loads the directory with `file` replaced by `text` (or left out, with `None`).
    fn load_with(
        &self,
        file: &Path,
        text: Option<&str>,
    ) -> Result<(Detector, LoadReport), LibraryError> {
        let mut sources = Vec::new();
        for path in rule_files(&self.dir).map_err(io(&self.dir))? {
            if path != file {
                let body = std::fs::read_to_string(&path).map_err(io(&path))?;
                sources.push((path, body));
            }
        }
        if let Some(text) = text {
            sources.push((file.to_owned(), text.to_owned()));
        }
        let named: Vec<(String, &str)> = sources
            .iter()
            .map(|(p, t)| (p.display().to_string(), t.as_str()))
            .collect();
        let borrowed: Vec<(&str, &str)> = named.iter().map(|(p, t)| (p.as_str(), *t)).collect();
        Ok(Detector::from_sources(&borrowed))
    }
}

/// The loaded rule with `id`.
fn find(report: &LoadReport, id: &str) -> Result<RuleInfo, LibraryError> {
    report
        .rules
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .ok_or_else(|| LibraryError::NotFound(id.to_owned()))
}

/// A rule id as a file name: letters, digits, `-`, `_` and `.` only.
fn safe_file_name(id: &str) -> Result<&str, LibraryError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(id)
    } else {
        Err(LibraryError::Conflict(format!(
            "rule id {id:?} cannot name a new file: use letters, digits, '-', '_' and '.'"
        )))
    }
}

/// Every rule file with its modification time and size: what a change is noticed by.
fn fingerprint(dir: &Path) -> Result<Vec<(PathBuf, Option<SystemTime>, u64)>, LibraryError> {
    let files = rule_files(dir).map_err(io(dir))?;
    Ok(files
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (path, modified, len)
        })
        .collect())
}

fn write_atomically(path: &Path, text: &str) -> Result<(), LibraryError> {
    let tmp = path.with_extension("yml.tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LibraryError + '_ {
    move |source| LibraryError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTRA: &str = "title: Setpoint poke\nid: extra-1\nlogsource: {product: evident}\ndetection:\n  sel:\n    type: control.setpoint.change\n  condition: sel\nlevel: medium\n";

    #[test]
    fn rules_are_added_replaced_refused_and_deleted_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        assert!(Library::seed_default_pack(&rules).unwrap());
        assert!(!Library::seed_default_pack(&rules).unwrap());
        let (library, _) = Library::open(&rules).unwrap();
        let before = library.report().rules.len();
        assert!(before >= 8, "{:?}", library.report().rules);

        let (_, new) = library.put("extra-1", EXTRA).unwrap();
        assert!(new);
        assert!(rules.join("extra-1.yml").try_exists().unwrap());
        assert_eq!(library.report().rules.len(), before + 1);
        assert_eq!(library.rule("extra-1").unwrap().yaml, EXTRA);

        // A bad replacement is refused with its line; the file is untouched.
        let broken = EXTRA.replace("condition: sel", "condition: sel and nothing");
        let err = library.put("extra-1", &broken).unwrap_err();
        assert!(
            matches!(&err, LibraryError::Invalid(p) if p[0].line.is_some()),
            "{err}"
        );
        assert_eq!(library.rule("extra-1").unwrap().yaml, EXTRA);
        // A body that does not define the id in the path is refused.
        let other = EXTRA.replace("id: extra-1", "id: extra-2");
        assert!(matches!(
            library.put("extra-1", &other),
            Err(LibraryError::Conflict(_))
        ));
        // A rule that shares its file cannot be deleted alone.
        let err = library
            .delete("5d0e8a52-3c1b-4f7e-9a64-2b7c1d9e0a11")
            .unwrap_err();
        assert!(err.to_string().contains("also holds"), "{err}");
        library.delete("extra-1").unwrap();
        assert!(!rules.join("extra-1.yml").try_exists().unwrap());
        assert!(matches!(
            library.delete("extra-1"),
            Err(LibraryError::NotFound(_))
        ));
        assert!(matches!(
            library.put("../escape", EXTRA),
            Err(LibraryError::Conflict(_))
        ));
    }

    #[test]
    fn a_changed_directory_is_noticed_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (library, _) = Library::open(dir.path()).unwrap();
        assert!(library.reload_if_changed().unwrap().is_none());
        std::fs::write(dir.path().join("x.yml"), EXTRA).unwrap();
        let (_, report) = library.reload_if_changed().unwrap().expect("noticed");
        assert_eq!(report.loaded, 1);
        assert!(library.reload_if_changed().unwrap().is_none());
        std::fs::write(dir.path().join("x.yml"), "title: [broken").unwrap();
        let (_, report) = library.reload_if_changed().unwrap().expect("noticed");
        assert_eq!(report.problems.len(), 1);
    }
}

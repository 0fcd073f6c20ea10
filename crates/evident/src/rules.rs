//! `evident rules`: checking rule files, and trying rules on events, like grep.

use anyhow::Context;
use clap::{Args, Subcommand};
use evident_detect::Detector;
use evident_ingest::{BodyFormat, Limits, admit};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `evident rules …`
#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Load every rule under DIR and report each one that cannot be loaded, and why
    /// (exit 1 if any cannot).
    Check {
        /// Directory of Sigma rule files (.yml, .yaml), read recursively.
        dir: PathBuf,
    },
    /// Run RULE (a rule file or a directory of them) over EVENTS (NDJSON, any shape
    /// evident accepts or Windows event log JSON, in order; correlation rules count on
    /// event time) and print one JSON line per match. Exits 0 if anything fired, 1 if
    /// nothing did, 2 on error, like grep.
    Test {
        /// A Sigma rule file, or a directory of them.
        rule: PathBuf,
        /// NDJSON events; `-` for standard input.
        events: PathBuf,
    },
}

/// Runs a `rules` subcommand.
pub fn run(args: RulesArgs) -> ExitCode {
    let result = match args.command {
        RulesCommand::Check { dir } => check(&dir),
        RulesCommand::Test { rule, events } => test(&rule, &events),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

fn load(path: &Path) -> anyhow::Result<(Detector, evident_detect::LoadReport)> {
    if path.is_dir() {
        Detector::from_dir(path).with_context(|| format!("cannot read {}", path.display()))
    } else {
        anyhow::ensure!(
            path.is_file(),
            "{} is not a file or directory",
            path.display()
        );
        Ok(Detector::from_files(&[path.to_owned()]))
    }
}

fn check(dir: &Path) -> anyhow::Result<ExitCode> {
    let (_, report) = load(dir)?;
    for problem in &report.problems {
        println!("{problem}");
    }
    eprintln!(
        "{} files: {} detection rules loaded, {} correlation rules loaded, {} problems",
        report.files,
        report.loaded,
        report.correlations,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn test(rule: &Path, events: &Path) -> anyhow::Result<ExitCode> {
    let (mut detector, report) = load(rule)?;
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    anyhow::ensure!(
        report.loaded > 0,
        "no rule could be loaded from {}",
        rule.display()
    );
    let started = time::OffsetDateTime::now_utc().unix_timestamp();
    let input: Box<dyn BufRead> = if events == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(events)
            .with_context(|| format!("cannot open {}", events.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut out = std::io::stdout().lock();
    let mut fired = false;
    let mut index = 0usize;
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", events.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let raw: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not JSON", events.display(), n + 1))?;
        let event = as_evident_event(&line).unwrap_or(raw);
        // Correlations run on event time; an event without one counts as now.
        let at = event_time(&event).unwrap_or(started);
        for m in detector.process(&event, at) {
            fired = true;
            let id = event
                .get("id")
                .cloned()
                .or_else(|| event.pointer("/Event/System/EventRecordID").cloned())
                .unwrap_or(Value::Null);
            let hit = json!({"rule_id": m.rule_id, "title": m.title, "event_index": index, "event_id": id});
            writeln!(out, "{hit}")?;
        }
        index += 1;
    }
    Ok(if fired {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The event as evident would store it, when the line is in a shape evident accepts.
fn as_evident_event(line: &str) -> Option<Value> {
    let admission = admit(
        line.as_bytes(),
        BodyFormat::Ndjson,
        &Limits::default(),
        time::OffsetDateTime::now_utc(),
    )
    .ok()?;
    let (_, event) = admission.accepted.into_iter().next()?;
    serde_json::to_value(&event.event).ok()
}

/// The event's time in Unix seconds: evident's `time`, or a Windows record's
/// `TimeCreated`.
fn event_time(event: &Value) -> Option<i64> {
    let text = event
        .get("time")
        .or_else(|| event.pointer("/Event/System/TimeCreated/#attributes/SystemTime"))?
        .as_str()?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

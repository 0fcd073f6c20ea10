//! `evident bench-detect`: events per second through the detection stage, on one thread.
//!
//! Writes the benchmark workload (evident's reference events) as NDJSON, and the field
//! mapping as a pipeline file, so another engine can be run on exactly the same input;
//! then reads that file back and evaluates every event against the rules, timing the
//! JSON parsing and the evaluation together (what any engine reading NDJSON does).

use super::workload::{IdKind, generate};
use anyhow::Context;
use clap::Args;
use evident_detect::Detector;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Arguments of `evident bench-detect`.
#[derive(Debug, Args)]
pub struct DetectBenchArgs {
    /// Directory of Sigma rules (read recursively).
    #[arg(long)]
    pub rules: PathBuf,
    /// Events in the workload.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Workload seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where to write the workload (NDJSON) and the field mapping (pipeline YAML).
    #[arg(long, default_value = ".bench-detect")]
    pub dir: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Run events through correlation and statistical rules too, on event time (as the
    /// service does); without it, detection rules only, each event on its own.
    #[arg(long)]
    pub correlate: bool,
}

/// Runs the benchmark.
pub fn run(args: DetectBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let events_file = args.dir.join("events.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&events_file)?);
    for event in generate(args.events, args.seed, IdKind::V4) {
        writeln!(out, "{}", event.canonical_line())?;
    }
    out.flush()?;
    std::fs::write(
        args.dir.join("mapping.yml"),
        evident_detect::fields::MAPPING,
    )?;

    let started = Instant::now();
    let (mut detector, report) = Detector::from_dir(&args.rules)
        .with_context(|| format!("cannot read {}", args.rules.display()))?;
    let load_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let input = std::io::BufReader::new(std::fs::File::open(&events_file)?);
    let (mut events, mut matches) = (0u64, 0u64);
    for line in input.lines() {
        let line = line?;
        let event: serde_json::Value = serde_json::from_str(&line)?;
        matches += if args.correlate {
            let time = event["time"]
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .map_or(0, OffsetDateTime::unix_timestamp);
            detector.process(&event, time).len()
        } else {
            detector.evaluate(&event).len()
        } as u64;
        events += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = events as f64 / secs;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"rules": report.loaded, "load_s": load_secs, "events": events,
                               "matches": matches, "seconds": secs, "events_per_s": rate.round()})
        );
    } else {
        println!(
            "{} rules loaded in {load_secs:.2} s; {events} events in {secs:.2} s: {rate:.0} events/s, {matches} matches",
            report.loaded
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

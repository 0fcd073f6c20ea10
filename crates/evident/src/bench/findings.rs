//! `evident bench-findings`: how soon after its commit an event's finding is stored.
//!
//! Runs the pipeline and the detection stage in this process over a scratch store (the
//! embedded one, or PostgreSQL), with the default rule pack. The reference workload is
//! submitted at a steady rate in small batches; every batch also carries one SQL
//! injection attempt, so findings keep firing. The detection stage measures, for each
//! firing event, the time from the commit that stored it to the transaction that stored
//! its finding; this prints their distribution.

use super::workload::{Generator, IdKind, admit_ndjson};
use anyhow::Context;
use evident_detect::{Detector, StageConfig, pack::DEFAULT_PACK, stage};
use evident_pipeline::{Ack, Pipeline, PipelineConfig};
use evident_store::{EventStore, FindingStore, PgStore, RetentionPolicy, SqliteStore};
use evident_stream::CommittedLog;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// `evident bench-findings`.
#[derive(Debug, clap::Args)]
pub struct FindingsBenchArgs {
    /// Events to send.
    #[arg(long, default_value_t = 50_000)]
    pub events: usize,
    /// Events per second.
    #[arg(long, default_value_t = 5_000)]
    pub rate: usize,
    /// Events per submission.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Scratch directory for the embedded store (emptied first).
    #[arg(long, default_value = ".bench-findings")]
    pub dir: PathBuf,
    /// Use this PostgreSQL database instead (it should be empty: a scratch database).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub async fn run(args: FindingsBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(
        args.batch > 0 && args.rate > 0,
        "--batch and --rate must be positive"
    );
    let (events, findings, committed): (
        Arc<dyn EventStore>,
        Arc<dyn FindingStore>,
        Arc<dyn CommittedLog>,
    ) = match &args.database_url {
        Some(url) => {
            let store = Arc::new(
                PgStore::connect(url, RetentionPolicy::default())
                    .await
                    .context("cannot open the PostgreSQL store")?,
            );
            (store.clone(), store.clone(), store)
        }
        None => {
            if args.dir.try_exists()? {
                std::fs::remove_dir_all(&args.dir)
                    .with_context(|| format!("cannot empty {}", args.dir.display()))?;
            }
            let store =
                Arc::new(SqliteStore::open_exclusive(&args.dir).context("cannot open the store")?);
            (store.clone(), store.clone(), store)
        }
    };
    let config = PipelineConfig::default();
    let (detector, _) = Detector::from_sources(DEFAULT_PACK);
    let (pipeline, commit) = Pipeline::start(events, config);
    let (handle, detection) = stage::start(
        findings,
        committed,
        detector,
        pipeline.commits(),
        StageConfig::default(),
    );
    let batches = make_batches(args.events, args.batch)?;
    let gap = Duration::from_secs_f64(args.batch as f64 / args.rate as f64);
    let started = Instant::now();
    let mut next = started;
    let mut sent = 0usize;
    for batch in batches {
        sent += batch.len();
        let pipeline = pipeline.clone();
        // Submissions overlap as clients' requests do; each waits for its commit.
        tokio::spawn(async move { pipeline.submit(batch, Ack::Commit).await });
        next += gap;
        tokio::time::sleep_until(next.into()).await;
    }
    pipeline.close();
    commit.await?;
    detection.await?;
    let secs = started.elapsed().as_secs_f64();
    let mut latencies = handle.stats().take_latencies();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let detected = handle.stats().events.load(Ordering::Relaxed);
    let hits = handle.stats().hits.load(Ordering::Relaxed);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"events": sent, "detected": detected, "hits": hits,
                "seconds": secs, "firing_events": latencies.len(), "p50_ms": at(0.5),
                "p99_ms": at(0.99), "max_ms": at(1.0)})
        );
    } else {
        println!(
            "{sent} events in {secs:.1} s, {detected} detected, {hits} hits from {} firing events; \
             commit to finding: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            latencies.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The workload in batches of `size`, each with one SQL injection attempt added.
fn make_batches(
    events: usize,
    size: usize,
) -> anyhow::Result<Vec<Vec<evident_model::EncodedEvent>>> {
    let mut generator = Generator::new(11, IdKind::V7);
    let mut batches = Vec::new();
    let mut left = events;
    while left > 0 {
        let n = left.min(size);
        left -= n;
        let mut body: String = (0..n.saturating_sub(1))
            .map(|_| generator.next_event().canonical_line() + "\n")
            .collect();
        body.push_str(
            &serde_json::json!({"type": "api.request", "severity": "medium",
                "actor": {"ip": "203.0.113.9"},
                "data": {"path": "/api/orders", "query": "id=1' OR '1'='1"}})
            .to_string(),
        );
        batches.push(admit_ndjson(&body, size + 1)?);
    }
    Ok(batches)
}

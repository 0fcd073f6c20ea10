//! `evident bench-load`: fills a store with the reference workload directly (admission,
//! then store appends of 5,000 events; no HTTP), with times ending about now, so query
//! benchmarks run against a store of realistic size.

use super::workload::{Generator, IdKind, MEAN_GAP, admit_ndjson};
use anyhow::Context;
use evident_store::{EventStore, PgStore, RetentionPolicy, SqliteStore};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;

/// Events per store append.
const CHUNK: usize = 5_000;

/// `evident bench-load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Events to load.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: usize,
    /// Embedded store directory to load (used unless --database-url is given).
    #[arg(long, default_value = "evident-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL store to load instead.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Workload seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Loads the workload; prints the event-time range it covers.
pub async fn run(args: LoadArgs) -> anyhow::Result<std::process::ExitCode> {
    let pg = match &args.database_url {
        Some(url) => Some(
            PgStore::connect(url, RetentionPolicy::default())
                .await
                .context("cannot open the PostgreSQL store")?,
        ),
        None => None,
    };
    let store: Arc<dyn EventStore> = match &pg {
        Some(pg) => Arc::new(pg.clone()),
        None => {
            Arc::new(SqliteStore::open_exclusive(&args.data_dir).context("cannot open the store")?)
        }
    };
    // Times end about now, so retention keeps them all.
    let span = MEAN_GAP * i32::try_from(args.events).unwrap_or(i32::MAX);
    let start = OffsetDateTime::now_utc() - span;
    let (chunks, mut ready) = tokio::sync::mpsc::channel(4);
    let events = args.events;
    let seed = args.seed;
    // Generation and admission on a thread of their own, ahead of the appends.
    let producer = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut generator = Generator::starting_at(seed, IdKind::V7, start);
        let mut left = events;
        while left > 0 {
            let n = left.min(CHUNK);
            left -= n;
            let body: String = (0..n)
                .map(|_| generator.next_event().canonical_line() + "\n")
                .collect();
            let batch = admit_ndjson(&body, CHUNK)?;
            if chunks.blocking_send(batch).is_err() {
                break;
            }
        }
        Ok(())
    });
    let progress = ProgressBar::new(events as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    while let Some(batch) = ready.recv().await {
        let n = batch.len() as u64;
        store.append(batch.into()).await?;
        progress.inc(n);
    }
    progress.finish_and_clear();
    // The data index is part of loading: what is left of it is written before the clock stops.
    if let Some(pg) = &pg {
        pg.build_term_segments().await?;
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the workload thread panicked"))??;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loaded {events} events in {secs:.0} s ({:.0} events/s), event times from {start} on",
        events as f64 / secs
    );
    Ok(std::process::ExitCode::SUCCESS)
}

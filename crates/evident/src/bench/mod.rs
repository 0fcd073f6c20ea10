//! `evident bench`: durable ingest throughput and latency over HTTP, beside the naive
//! table's raw insert rate measured on the same events in the same run.
//!
//! By default it starts its own server (this binary, `serve`, on a fresh data directory
//! and a free port) so one command measures everything; `--url` targets a running one.

mod baseline;
mod load;
mod server;
mod workload;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

/// `evident bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events to send.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Ids the generated events carry.
    #[arg(long, value_enum, default_value_t = workload::IdKind::V4)]
    pub ids: workload::IdKind,
    /// Workload seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Read the workload from an NDJSON file of the reference generator instead of generating it.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Scratch directory for the server's data and the baseline database (on the disk to measure).
    #[arg(long, default_value = ".bench-data")]
    pub dir: PathBuf,
    /// Benchmark a running server at this URL instead of starting one (needs --key).
    #[arg(long, requires = "key")]
    pub url: Option<String>,
    /// API key for --url.
    #[arg(long, env = "EVIDENT_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Skip the naive-table baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Also print the figures as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let events = match &args.input {
        Some(path) => workload::read_reference_file(path, args.events)?,
        None => workload::generate(args.events, args.seed, args.ids),
    };
    anyhow::ensure!(!events.is_empty(), "the workload is empty");
    let lines: Vec<String> = events
        .iter()
        .map(workload::WorkEvent::canonical_line)
        .collect();
    let avg_bytes = lines.iter().map(|l| l.len() + 1).sum::<usize>() / lines.len();
    let batch = args.batch.max(1);
    let bodies: Vec<bytes::Bytes> = lines
        .chunks(batch)
        .map(|c| bytes::Bytes::from(c.join("\n") + "\n"))
        .collect();
    let per_body: Vec<usize> = lines.chunks(batch).map(<[String]>::len).collect();
    eprintln!(
        "workload: {} events, {avg_bytes} B average, {:?} ids, {} clients, {batch} events per request",
        events.len(),
        args.ids,
        args.clients
    );

    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let (target, server) = match (&args.url, &args.key) {
        (Some(url), Some(key)) => (target(url, key)?, None),
        _ => {
            let server = server::Spawned::start(&args.dir.join("server")).await?;
            (target(&server.url, &server.key)?, Some(server))
        }
    };
    let progress = ProgressBar::new(events.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = load::run(&target, bodies, per_body, args.clients, &progress).await;
    progress.finish_and_clear();
    if let Some(server) = server {
        server.stop().await;
    }
    let result = result?;
    let rate = result.events as f64 / result.elapsed.as_secs_f64();
    let ms = |q: f64| result.latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "evident over HTTP, durable 202: {:.0} events/s; request latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        rate,
        ms(0.5),
        ms(0.99),
        result.latency.max() as f64 / 1000.0
    );
    let baseline_rate = if args.no_baseline {
        None
    } else {
        let took =
            tokio::task::block_in_place(|| baseline::run(&args.dir.join("baseline.db"), &events))?;
        let baseline_rate = events.len() as f64 / took.as_secs_f64();
        println!(
            "naive security_events table (5 indexes, synchronous=FULL, {} rows per transaction): {baseline_rate:.0} rows/s",
            baseline::ROWS_PER_TX
        );
        println!("ratio evident / naive: {:.2}x", rate / baseline_rate);
        Some(baseline_rate)
    };
    if args.json {
        let summary = serde_json::json!({
            "events": result.events, "clients": args.clients, "batch": batch, "avg_event_bytes": avg_bytes,
            "events_per_s": rate.round(), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": result.latency.max() as f64 / 1000.0,
            "naive_rows_per_s": baseline_rate.map(f64::round), "ratio": baseline_rate.map(|b| ((rate / b) * 100.0).round() / 100.0),
        });
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The load target for a base URL such as `http://127.0.0.1:7600`.
fn target(url: &str, key: &str) -> anyhow::Result<load::Target> {
    let Some(authority) = url.strip_prefix("http://") else {
        bail!("--url must be an http:// URL of the service, got {url}");
    };
    Ok(load::Target {
        authority: authority.trim_end_matches('/').to_owned(),
        auth: format!("Bearer {}", key.trim()),
    })
}

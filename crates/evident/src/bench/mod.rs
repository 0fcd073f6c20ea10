//! `evident bench`: durable ingest throughput and latency over HTTP, beside the naive
//! table's raw insert rate measured on the same events in the same run.
//!
//! By default it starts its own server (this binary, `serve`, on a fresh data directory
//! and a free port) so one command measures everything; `--url` targets a running one.

mod baseline;
pub mod detect;
pub mod findings;
mod load;
pub mod loader;
pub mod peers;
mod probe;
pub mod queries;
mod server;
pub mod stream;
mod workload;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// An extra argument for the server the benchmark starts (repeat for several), e.g.
    /// `--serve-arg=--personal-fields --serve-arg=none`.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// Meanwhile time single events of each priority, one at a time (ack latency per priority).
    #[arg(long)]
    pub probe: bool,
    /// Fire and forget (`?ack=none`) as fast as the clients can, counting 429 refusals
    /// instead of failing: an overload run. Reports the server's peak memory.
    #[arg(long)]
    pub overload: bool,
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
        (Some(url), Some(key)) => (target(url, key, args.overload)?, None),
        _ => {
            let server = server::Spawned::start(&args.dir.join("server"), &args.serve_args).await?;
            (
                target(&server.url, &server.key, args.overload)?,
                Some(server),
            )
        }
    };
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probe = args.probe.then(|| {
        let committed = load::Target {
            path: "/api/v1/events".into(),
            tolerate_refusals: false,
            ..target.clone()
        };
        (
            probe::spawn(committed, stop_probe.clone()),
            probe::spawn_disk(&args.dir, stop_probe.clone()),
        )
    });
    let progress = ProgressBar::new(events.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let load_started = std::time::Instant::now();
    let result = load::run(&target, bodies, per_body, args.clients, &progress).await;
    progress.finish_and_clear();
    stop_probe.store(true, Ordering::Relaxed);
    let probes = match probe {
        Some((acks, disk)) => Some(
            tokio::task::spawn_blocking(move || {
                let panicked = || anyhow::anyhow!("a probe thread panicked");
                anyhow::Ok((
                    acks.join().map_err(|_| panicked())??,
                    disk.join().map_err(|_| panicked())??,
                ))
            })
            .await??,
        ),
        None => None,
    };
    let drained = if args.overload {
        wait_until_drained(&target, load_started).await
    } else {
        None
    };
    let peak_rss_kib = server.as_ref().and_then(server::Spawned::peak_rss_kib);
    if let Some(server) = server {
        server.stop().await;
    }
    let result = result?;
    let rate = result.events as f64 / result.elapsed.as_secs_f64();
    if args.overload {
        let offered = (result.events + result.refused) as f64 / result.elapsed.as_secs_f64();
        println!(
            "overload: offered {offered:.0} events/s; {} queued, {} refused with 429",
            result.events, result.refused
        );
        if let Some(secs) = drained {
            println!("everything queued was committed {secs:.1} s after the load began");
        }
    }
    let ms = |q: f64| result.latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "evident over HTTP, durable 202: {:.0} events/s; request latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        rate,
        ms(0.5),
        ms(0.99),
        result.latency.max() as f64 / 1000.0
    );
    let probe_summary = probes.as_ref().map(print_probes);
    if let Some(kib) = peak_rss_kib {
        println!("server peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0);
    }
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
            "refused": result.refused, "ack_latency": probe_summary, "server_peak_rss_mib": peak_rss_kib.map(|k| k as f64 / 1024.0),
        });
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The load target for a base URL such as `http://127.0.0.1:7600`.
fn target(url: &str, key: &str, overload: bool) -> anyhow::Result<load::Target> {
    let Some(authority) = url.strip_prefix("http://") else {
        bail!("--url must be an http:// URL of the service, got {url}");
    };
    Ok(load::Target {
        authority: authority.trim_end_matches('/').to_owned(),
        auth: format!("Bearer {}", key.trim()),
        path: if overload {
            "/api/v1/events?ack=none"
        } else {
            "/api/v1/events"
        }
        .to_owned(),
        tolerate_refusals: overload,
    })
}

/// Polls the pipeline statistics until no event is queued; seconds since `since`.
async fn wait_until_drained(target: &load::Target, since: std::time::Instant) -> Option<f64> {
    let key = target.auth.strip_prefix("Bearer ")?;
    let client = crate::client::Client::new(&format!("http://{}", target.authority), key).ok()?;
    for _ in 0..6000 {
        let stats = client.get_json("/api/v1/stats/pipeline", &[]).await.ok()?;
        let queued: u64 = stats["queue_size"]
            .as_array()?
            .iter()
            .filter_map(|l| l["events"].as_u64())
            .sum();
        if queued == 0 {
            return Some(since.elapsed().as_secs_f64());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}

/// Prints ack latency per priority from the probes, most urgent first, then the disk's
/// flush latency meanwhile.
fn print_probes(
    (probes, disk): &(probe::ProbeResult, hdrhistogram::Histogram<u64>),
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for priority in evident_model::Priority::ALL.into_iter().rev() {
        let h = &probes[usize::from(priority.rank())];
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "ack latency {:<8} ({:>5} probes): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            priority.as_str(),
            h.len(),
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
        out.insert(priority.as_str().into(), serde_json::json!({"probes": h.len(), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1000.0}));
    }
    let ms = |q: f64| disk.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "disk flush meanwhile (fdatasync of a 4 KiB overwrite, {} probes): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        disk.len(),
        ms(0.5),
        ms(0.99),
        disk.max() as f64 / 1000.0
    );
    out.insert("disk_flush".into(), serde_json::json!({"probes": disk.len(), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": disk.max() as f64 / 1000.0}));
    serde_json::Value::Object(out)
}

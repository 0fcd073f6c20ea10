//! `evident bench-stream`: the live stream under load.
//!
//! Starts a server, then, in one run:
//! 1. ingest as fast as it goes (16 clients, batches of 1,000) with no subscriber;
//! 2. the same with `--subscribers` WebSocket clients attached, each taking every event;
//! 3. a steady `--rate` of events for `--seconds` with those subscribers: the delay from
//!    each event's commit (the `committed_at` the server puts in the message) to its
//!    arrival at each subscriber, p50 / p99 / max, and whether every subscriber got
//!    every event.

use super::{load, server, target, workload};
use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `evident bench-stream`.
#[derive(Debug, clap::Args)]
pub struct StreamBenchArgs {
    /// WebSocket subscribers, each taking every event.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Events per second in the steady phase.
    #[arg(long, default_value_t = 10_000)]
    pub rate: usize,
    /// Length of the steady phase.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Events per ingest run in the throughput phases.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Scratch directory for the server's data.
    #[arg(long, default_value = ".bench-data")]
    pub dir: PathBuf,
    /// Run the server on these CPUs only (a `taskset -c` list, e.g. `0`); run this
    /// command itself on the others (`taskset -c 1 evident bench-stream --server-cpus 0`)
    /// to keep the subscribers' and the load's work off the server's CPUs.
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// An extra argument for the server (repeat for several).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// Also print the figures as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// What the subscribers saw.
#[derive(Default)]
struct Seen {
    /// Events received, by all subscribers together.
    events: AtomicU64,
    /// `lagged` notices received.
    lagged: AtomicU64,
    /// Subscribers the server closed (too slow).
    closed: AtomicU64,
    /// Whether delays are recorded now (the steady phase).
    recording: std::sync::atomic::AtomicBool,
    /// Messages missed, as the `lagged` notices count them.
    missed: AtomicU64,
    /// Commit-to-arrival delays in microseconds, while recording.
    delays: Mutex<Option<Histogram<u64>>>,
}

/// Runs the benchmark.
pub async fn run(args: StreamBenchArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let server = server::Spawned::start_on_cpus(
        &args.dir.join("stream-server"),
        &args.serve_args,
        args.server_cpus.as_deref(),
    )
    .await?;
    let target = target(&server.url, &server.key, false)?;
    let mut generator = workload::Generator::new(7, workload::IdKind::V4);
    let mut bodies = |n: usize, batch: usize| -> (Vec<Bytes>, Vec<usize>) {
        let lines: Vec<String> = (0..n)
            .map(|_| generator.next_event().canonical_line())
            .collect();
        let bodies = lines
            .chunks(batch)
            .map(|c| Bytes::from(c.join("\n") + "\n"))
            .collect();
        (bodies, lines.chunks(batch).map(<[String]>::len).collect())
    };
    let quiet = ProgressBar::hidden();

    eprintln!("1/3 ingest, no subscriber: {} events", args.events);
    let (b, p) = bodies(args.events, 1000);
    let alone = load::run(&target, b, p, 16, &quiet).await?;
    let alone_rate = alone.events as f64 / alone.elapsed.as_secs_f64();

    eprintln!("2/3 ingest with {} WebSocket subscribers", args.subscribers);
    let seen = Arc::new(Seen::default());
    let ws_url = format!("{}/api/v1/stream", server.url.replace("http://", "ws://"));
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        subscribers.push(subscribe(&ws_url, &server.key, seen.clone()).await?);
    }
    let before = seen.events.load(Ordering::Relaxed);
    let (b, p) = bodies(args.events, 1000);
    let watched = load::run(&target, b, p, 16, &quiet).await?;
    let watched_rate = watched.events as f64 / watched.elapsed.as_secs_f64();
    let delivered = wait_for(&seen, before, watched.events * args.subscribers as u64).await;

    eprintln!(
        "   {watched_rate:.0} events/s against {alone_rate:.0} alone; {delivered} messages delivered"
    );
    eprintln!(
        "3/3 {} events/s for {} s with {} subscribers",
        args.rate, args.seconds, args.subscribers
    );
    *seen.delays.lock().unwrap_or_else(PoisonError::into_inner) =
        Some(Histogram::new_with_bounds(1, 600_000_000, 3)?);
    seen.recording.store(true, Ordering::Relaxed);
    let before = seen.events.load(Ordering::Relaxed);
    let missed_before = seen.missed.load(Ordering::Relaxed);
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate / 100).max(1);
    let ticks = args.seconds * 100;
    let (b, _) = bodies(per_tick * ticks as usize, per_tick);
    let started = Instant::now();
    let mut next = tokio::time::Instant::now();
    let mut posts = Vec::with_capacity(b.len());
    for body in b {
        let target = target.clone();
        posts.push(tokio::spawn(async move {
            let mut sender = load::connect(&target).await?;
            load::post(&mut sender, &target, body).await
        }));
        next += tick;
        tokio::time::sleep_until(next).await;
    }
    let (mut sent, mut refused) = (0u64, 0u64);
    for post in posts {
        let (status, answer) = post.await??;
        anyhow::ensure!(
            status.is_success() || status == hyper::StatusCode::TOO_MANY_REQUESTS,
            "ingest answered {status}: {answer}"
        );
        sent += answer["stored"].as_u64().unwrap_or(0) + answer["duplicates"].as_u64().unwrap_or(0);
        refused += answer["rejected"].as_u64().unwrap_or(0);
    }
    let offered = sent as f64 / started.elapsed().as_secs_f64();
    let steady_delivered = wait_for(&seen, before, sent * args.subscribers as u64).await;
    seen.recording.store(false, Ordering::Relaxed);
    for s in subscribers {
        s.abort();
    }
    // The subscribers' last delays reach the shared histogram as their tasks end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delays = seen
        .delays
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_else(|| Histogram::new(3).expect("3 significant figures are valid"));
    let missed = seen.missed.load(Ordering::Relaxed) - missed_before;
    let peak_rss = server.peak_rss_kib();
    server.stop().await;

    let ms = |q: f64| delays.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "ingest, no subscriber: {alone_rate:.0} events/s; with {} subscribers: {watched_rate:.0} events/s ({:+.1}%), {delivered} of {} messages delivered",
        args.subscribers,
        (watched_rate / alone_rate - 1.0) * 100.0,
        watched.events * args.subscribers as u64
    );
    println!(
        "steady {offered:.0} events/s to {} subscribers: commit to subscriber p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {steady_delivered} of {} messages delivered, {missed} missed; {} subscribers closed as too slow; {refused} events refused for overload",
        args.subscribers,
        ms(0.5),
        ms(0.99),
        delays.max() as f64 / 1000.0,
        sent * args.subscribers as u64,
        seen.closed.load(Ordering::Relaxed)
    );
    if let Some(kib) = peak_rss {
        println!("server peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0);
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "subscribers": args.subscribers,
                "ingest_alone_events_per_s": alone_rate.round(),
                "ingest_watched_events_per_s": watched_rate.round(),
                "ingest_cost": ((1.0 - watched_rate / alone_rate) * 1000.0).round() / 1000.0,
                "steady_events_per_s": offered.round(),
                "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": delays.max() as f64 / 1000.0,
                "delivered": steady_delivered, "expected": sent * args.subscribers as u64,
                "missed": missed, "refused": refused, "closed": seen.closed.load(Ordering::Relaxed), "lagged_notices": seen.lagged.load(Ordering::Relaxed),
                "server_peak_rss_mib": peak_rss.map(|k| k as f64 / 1024.0),
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until the subscribers together received `want` events since `before` (or
/// nothing new came for 5 s); how many they received.
async fn wait_for(seen: &Seen, before: u64, want: u64) -> u64 {
    let mut last = (seen.events.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = seen.events.load(Ordering::Relaxed);
        let missed = seen.missed.load(Ordering::Relaxed);
        if now - before + missed >= want || last.1.elapsed() > Duration::from_secs(5) {
            return now - before;
        }
        if now != last.0 {
            last = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects one subscriber that counts every event and records its delay after commit.
async fn subscribe(
    url: &str,
    key: &str,
    seen: Arc<Seen>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("cannot open the stream")?;
    // The first message says the subscription is in place.
    socket.next().await.context("the stream closed at once")??;
    Ok(tokio::spawn(async move {
        let mut local: Option<Histogram<u64>> = None;
        let mut since_flush = 0u32;
        while let Some(Ok(message)) = socket.next().await {
            let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                continue;
            };
            let arrived = SystemTime::now();
            if text.starts_with(r#"{"type":"security_event""#) {
                seen.events.fetch_add(1, Ordering::Relaxed);
                if seen.recording.load(Ordering::Relaxed)
                    && let Some(at) = committed_at(&text)
                {
                    let delay = arrived.duration_since(at).unwrap_or_default();
                    let hist = local.get_or_insert_with(|| {
                        Histogram::new_with_bounds(1, 600_000_000, 3).expect("the bounds are valid")
                    });
                    hist.saturating_record(delay.as_micros() as u64);
                    since_flush += 1;
                }
            } else if text.starts_with(r#"{"type":"closed""#) {
                seen.closed.fetch_add(1, Ordering::Relaxed);
            } else if text.starts_with(r#"{"type":"lagged""#) {
                seen.lagged.fetch_add(1, Ordering::Relaxed);
                let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                seen.missed
                    .fetch_add(value["missed"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
            if since_flush >= 1000
                && let Some(hist) = local.take()
            {
                flush(&seen, &hist);
                since_flush = 0;
            }
        }
        if let Some(hist) = local {
            flush(&seen, &hist);
        }
    }))
}

fn flush(seen: &Seen, hist: &Histogram<u64>) {
    if let Some(all) = seen
        .delays
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        all.add(hist).ok();
    }
}

/// The `committed_at` of a `security_event` message, read without parsing the event.
fn committed_at(text: &str) -> Option<SystemTime> {
    const KEY: &str = r#""committed_at":""#;
    let start = text.find(KEY)? + KEY.len();
    let end = start + text[start..].find('"')?;
    let at = OffsetDateTime::parse(&text[start..end], &Rfc3339).ok()?;
    Some(SystemTime::from(at))
}

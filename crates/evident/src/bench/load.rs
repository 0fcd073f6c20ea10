//! The HTTP load: N concurrent clients, each on its own keep-alive connection, posting
//! prepared NDJSON batches and timing each request.
//!
//! The clients speak HTTP/1.1 through hyper's connection API directly (no pool, no
//! redirects, no decompression), so the load generator spends as little of the machine's
//! CPU as it can: it shares the machine with the server it measures.

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use indicatif::ProgressBar;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one load run measured.
pub struct LoadResult {
    /// Events acknowledged (committed, or queued with `?ack=none`).
    pub events: u64,
    /// Events refused for overload (429), when refusals are tolerated.
    pub refused: u64,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Request latency in microseconds.
    pub latency: Histogram<u64>,
}

/// Where to send and with which key.
#[derive(Clone)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    /// The `Authorization` header value.
    pub auth: String,
    /// Path and query of ingest requests (`/api/v1/events`, or with `?ack=none`).
    pub path: String,
    /// Count 429 answers as refused events instead of failing the run (overload runs).
    pub tolerate_refusals: bool,
}

/// Work shared by the clients: prepared bodies and the next one to send.
struct Work {
    bodies: Vec<Bytes>,
    per_body: Vec<usize>,
    next: AtomicUsize,
}

/// Posts every body (body `i` holding `per_body[i]` events) with `clients` concurrent clients.
pub async fn run(
    target: &Target,
    bodies: Vec<Bytes>,
    per_body: Vec<usize>,
    clients: usize,
    progress: &ProgressBar,
) -> anyhow::Result<LoadResult> {
    let work = Arc::new(Work {
        bodies,
        per_body,
        next: AtomicUsize::new(0),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| tokio::spawn(client(target.clone(), work.clone(), progress.clone())))
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut events, mut refused) = (0, 0);
    for task in tasks {
        let (hist, counts) = task.await??;
        latency.add(hist)?;
        events += counts.0;
        refused += counts.1;
    }
    Ok(LoadResult {
        events,
        refused,
        elapsed: started.elapsed(),
        latency,
    })
}

/// One client: its latency histogram and (acknowledged, refused) event counts.
async fn client(
    target: Target,
    work: Arc<Work>,
    progress: ProgressBar,
) -> anyhow::Result<(Histogram<u64>, (u64, u64))> {
    let mut sender = connect(&target).await?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut events, mut refused) = (0u64, 0u64);
    loop {
        let i = work.next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = work.bodies.get(i) else {
            break;
        };
        let sent = Instant::now();
        let (status, answer) = post(&mut sender, &target, body.clone()).await?;
        hist.saturating_record(sent.elapsed().as_micros() as u64);
        let count = |key: &str| answer[key].as_u64().unwrap_or(0);
        let all_taken =
            status == hyper::StatusCode::ACCEPTED && count("accepted") == work.per_body[i] as u64;
        let overload = status == hyper::StatusCode::TOO_MANY_REQUESTS && target.tolerate_refusals;
        if !all_taken && !overload {
            bail!("batch {i} not fully acknowledged: {status} {answer}");
        }
        events += count("accepted");
        refused += count("rejected");
        progress.inc(work.per_body[i] as u64);
    }
    Ok((hist, (events, refused)))
}

/// Opens one keep-alive HTTP/1.1 connection to the target.
pub async fn connect(
    target: &Target,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("cannot connect to {}", target.authority))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Posts one NDJSON body to the target's ingest path; returns the status and JSON answer.
pub async fn post(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    target: &Target,
    body: Bytes,
) -> anyhow::Result<(hyper::StatusCode, serde_json::Value)> {
    let request = Request::post(target.path.as_str())
        .header(HOST, &target.authority)
        .header(AUTHORIZATION, &target.auth)
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(Full::new(body))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&answer).unwrap_or_default()))
}

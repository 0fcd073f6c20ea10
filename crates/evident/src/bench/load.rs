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
    /// Events acknowledged as committed.
    pub events: u64,
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
    let mut events = 0;
    for task in tasks {
        let (hist, n) = task.await??;
        latency.add(hist)?;
        events += n;
    }
    Ok(LoadResult {
        events,
        elapsed: started.elapsed(),
        latency,
    })
}

async fn client(
    target: Target,
    work: Arc<Work>,
    progress: ProgressBar,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let stream = tokio::net::TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("cannot connect to {}", target.authority))?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut events = 0u64;
    loop {
        let i = work.next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = work.bodies.get(i) else {
            break;
        };
        let request = Request::post("/api/v1/events")
            .header(HOST, &target.authority)
            .header(AUTHORIZATION, &target.auth)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(Full::new(body.clone()))?;
        let sent = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        hist.saturating_record(sent.elapsed().as_micros() as u64);
        let accepted = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["accepted"].as_u64());
        if status != hyper::StatusCode::ACCEPTED || accepted != Some(work.per_body[i] as u64) {
            bail!(
                "batch {i} not fully acknowledged: {status} {}",
                String::from_utf8_lossy(&answer)
            );
        }
        events += work.per_body[i] as u64;
        progress.inc(work.per_body[i] as u64);
    }
    Ok((hist, events))
}

//! The HTTP load: N concurrent clients posting prepared NDJSON batches, timing each request.

use crate::client::Client;
use anyhow::bail;
use hdrhistogram::Histogram;
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

/// Posts every body in `bodies` (each holding `per_body` events) with `clients` concurrent clients.
pub async fn run(
    client: &Client,
    bodies: Vec<Vec<u8>>,
    per_body: Vec<usize>,
    clients: usize,
    progress: &ProgressBar,
) -> anyhow::Result<LoadResult> {
    let bodies = Arc::new(bodies);
    let per_body = Arc::new(per_body);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, bodies, per_body, next, progress) = (
            client.clone(),
            bodies.clone(),
            per_body.clone(),
            next.clone(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
            let mut events = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let sent = Instant::now();
                let response = client.post_ndjson(body.clone()).await?;
                let status = response.status();
                let answer: serde_json::Value = response.json().await.unwrap_or_default();
                hist.saturating_record(sent.elapsed().as_micros() as u64);
                if status != reqwest::StatusCode::ACCEPTED
                    || answer["accepted"].as_u64() != Some(per_body[i] as u64)
                {
                    bail!("batch {i} not fully acknowledged: {status} {answer}");
                }
                events += per_body[i] as u64;
                progress.inc(per_body[i] as u64);
            }
            anyhow::Ok((hist, events))
        }));
    }
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

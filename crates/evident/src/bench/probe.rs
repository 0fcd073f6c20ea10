//! Ack-latency probes: while the load runs, single events of each priority, one at a
//! time, each timed from send to its committed acknowledgement.

use super::load::{Target, connect, post};
use bytes::Bytes;
use evident_model::Priority;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Pause between probes, so the probes themselves add no load to speak of.
const INTERVAL: Duration = Duration::from_millis(10);

/// Per-priority ack latency in microseconds, indexed by [`Priority::rank`].
pub type ProbeResult = Vec<Histogram<u64>>;

/// Starts the probes on a thread and runtime of their own, so their timings do not
/// include waiting behind the load clients' work in the load generator.
pub fn spawn(
    target: Target,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<ProbeResult>> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(run(target, stop))
    })
}

/// Probes until `stop` is set: one prober per priority, each one request at a time.
async fn run(target: Target, stop: Arc<AtomicBool>) -> anyhow::Result<ProbeResult> {
    let probers: Vec<_> = Priority::ALL
        .into_iter()
        .map(|p| tokio::spawn(probe(target.clone(), stop.clone(), p)))
        .collect();
    let mut hists = Vec::with_capacity(5);
    for prober in probers {
        hists.push(prober.await??);
    }
    Ok(hists)
}

async fn probe(
    target: Target,
    stop: Arc<AtomicBool>,
    priority: Priority,
) -> anyhow::Result<Histogram<u64>> {
    let mut sender = connect(&target).await?;
    let mut hist = Histogram::new_with_bounds(1, 600_000_000, 3)?;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = format!(
            "{{\"type\":\"bench.probe\",\"severity\":\"{0}\",\"priority\":\"{0}\",\"data\":{{\"n\":{n}}}}}\n",
            priority.as_str()
        );
        let sent = Instant::now();
        let (status, answer) = post(&mut sender, &target, Bytes::from(body)).await?;
        if status == hyper::StatusCode::ACCEPTED && answer["stored"] == 1 {
            hist.saturating_record(sent.elapsed().as_micros() as u64);
        }
        tokio::time::sleep(INTERVAL).await;
    }
    Ok(hist)
}

/// Starts the disk-flush probe: until `stop` is set, overwrites 4 KiB of a file in `dir`
/// and times `fdatasync`, every [`INTERVAL`]. It is the floor under any durable ack
/// latency on this disk under this load: a critical event's ack waits for one such flush.
pub fn spawn_disk(
    dir: &std::path::Path,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<Histogram<u64>>> {
    let path = dir.join("flush-probe");
    std::thread::spawn(move || {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(&path)?;
        let block = [0x5a_u8; 4096];
        // Written and flushed once, so each probe overwrites and flushes data only.
        file.write_all_at(&block, 0)?;
        file.sync_all()?;
        let mut hist = Histogram::new_with_bounds(1, 600_000_000, 3)?;
        while !stop.load(Ordering::Relaxed) {
            file.write_all_at(&block, 0)?;
            let started = Instant::now();
            file.sync_data()?;
            hist.saturating_record(started.elapsed().as_micros() as u64);
            std::thread::sleep(INTERVAL);
        }
        drop(file);
        std::fs::remove_file(&path)?;
        Ok(hist)
    })
}

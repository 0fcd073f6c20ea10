//! The client: a queue, a sender task that batches, retries and spools.

use crate::event::Event;
use crate::spool::{Spool, SpoolError};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where to send, and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// An API key with the ingest role.
    pub key: String,
    /// Events sent in one request at most.
    pub batch: usize,
    /// Longest an event waits for its batch to fill (critical events do not wait).
    pub linger: Duration,
    /// Events queued in memory at most; past it, [`Client::send`] waits for room.
    pub queue: usize,
    /// One request's time limit.
    pub timeout: Duration,
    /// Keep batches on disk here while the server cannot be reached.
    pub spool: Option<PathBuf>,
    /// The spool's bound, in bytes.
    pub spool_max_bytes: u64,
    /// Failed tries of a batch before it is spooled (with a spool).
    pub tries_before_spool: u32,
    /// Longest pause between two tries.
    pub max_backoff: Duration,
}

impl Config {
    /// Defaults: batches of 500, 200 ms linger, 10,000 queued, 10 s per request, no
    /// spool (64 MiB when one is set), spooled after 3 failed tries, backoff to 30 s.
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            url: url.into().trim_end_matches('/').to_owned(),
            key: key.into(),
            batch: 500,
            linger: Duration::from_millis(200),
            queue: 10_000,
            timeout: Duration::from_secs(10),
            spool: None,
            spool_max_bytes: 64 * 1024 * 1024,
            tries_before_spool: 3,
            max_backoff: Duration::from_secs(30),
        }
    }

    /// Keeps batches in `dir` while the server cannot be reached.
    pub fn spool(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool = Some(dir.into());
        self
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration cannot work (no runtime, a spool that cannot open, ...).
    #[error("evident client: {0}")]
    Config(String),
    /// The client was shut down.
    #[error("evident client: shut down")]
    Closed,
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Counts of what the client did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Events the server took (stored, already stored, or folded).
    pub stored: u64,
    /// Events the server refused as invalid (logged; sending again would not help).
    pub refused: u64,
    /// Events put in the spool.
    pub spooled: u64,
    /// Requests that failed and were tried again.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    refused: AtomicU64,
    spooled: AtomicU64,
    retries: AtomicU64,
}

enum Msg {
    Event(String),
    Flush(oneshot::Sender<()>),
}

/// Sends events to evident in the background. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    normal: mpsc::Sender<Msg>,
    critical: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
    task: Arc<tokio::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Client {
    /// Starts the sender task on the current tokio runtime.
    pub fn start(config: Config) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ClientError::Config("start the client inside a tokio runtime".into()))?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let spool = match &config.spool {
            Some(dir) => Some(Spool::open(dir, config.spool_max_bytes)?),
            None => None,
        };
        let (normal, normal_rx) = mpsc::channel(config.queue.max(1));
        let (critical, critical_rx) = mpsc::channel(config.queue.max(1));
        let counters = Arc::new(Counters::default());
        let sender = Sender {
            http,
            config,
            spool,
            counters: counters.clone(),
        };
        let task = runtime.spawn(sender.run(normal_rx, critical_rx));
        Ok(Self {
            normal,
            critical,
            counters,
            task: Arc::new(tokio::sync::Mutex::new(Some(task))),
        })
    }

    /// Queues `event`, waiting for room when the queue is full. Critical events go ahead
    /// of the others and are sent at once.
    pub async fn send(&self, event: Event) -> Result<(), ClientError> {
        let lane = if event.is_critical() {
            &self.critical
        } else {
            &self.normal
        };
        lane.send(Msg::Event(event.to_json().to_string()))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Queues `event` if there is room now; gives it back otherwise (for callers that
    /// must not wait, such as a logging layer).
    pub fn try_send(&self, event: Event) -> Result<(), Event> {
        let lane = if event.is_critical() {
            &self.critical
        } else {
            &self.normal
        };
        let line = event.to_json().to_string();
        lane.try_send(Msg::Event(line)).map_err(|_| event)
    }

    /// Waits until every event queued before this call is stored by the server or kept
    /// in the spool.
    pub async fn flush(&self) -> Result<(), ClientError> {
        for lane in [&self.critical, &self.normal] {
            let (done, wait) = oneshot::channel();
            lane.send(Msg::Flush(done))
                .await
                .map_err(|_| ClientError::Closed)?;
            wait.await.map_err(|_| ClientError::Closed)?;
        }
        Ok(())
    }

    /// Flushes, then stops the sender task.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        let flushed = self.flush().await;
        if let Some(task) = self.task.lock().await.take() {
            task.abort();
            task.await.ok();
        }
        flushed
    }

    /// What the client did so far.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            stored: c.stored.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            spooled: c.spooled.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }
}

struct Sender {
    http: reqwest::Client,
    config: Config,
    spool: Option<Spool>,
    counters: Arc<Counters>,
}

/// What one request achieved.
enum Sent {
    /// Everything taken (or refused as invalid, which sending again would not change).
    Done,
    /// These lines must be sent again, after this pause.
    Again(Vec<String>, Duration),
}

impl Sender {
    async fn run(mut self, mut normal: mpsc::Receiver<Msg>, mut critical: mpsc::Receiver<Msg>) {
        let batch = self.config.batch.max(1);
        let mut pending: Vec<String> = Vec::with_capacity(batch);
        let mut deadline: Option<Instant> = None;
        let (mut normal_open, mut critical_open) = (true, true);
        while normal_open || critical_open {
            tokio::select! {
                biased;
                msg = critical.recv(), if critical_open => match msg {
                    Some(Msg::Event(line)) => {
                        pending.push(line);
                        self.deliver(std::mem::take(&mut pending)).await;
                        deadline = None;
                    }
                    Some(Msg::Flush(done)) => {
                        self.deliver(std::mem::take(&mut pending)).await;
                        deadline = None;
                        done.send(()).ok();
                    }
                    None => critical_open = false,
                },
                msg = normal.recv(), if normal_open => match msg {
                    Some(Msg::Event(line)) => {
                        pending.push(line);
                        if pending.len() >= batch {
                            self.deliver(std::mem::take(&mut pending)).await;
                            deadline = None;
                        } else if deadline.is_none() {
                            deadline = Some(Instant::now() + self.config.linger);
                        }
                    }
                    Some(Msg::Flush(done)) => {
                        self.deliver(std::mem::take(&mut pending)).await;
                        self.replay_spool().await;
                        deadline = None;
                        done.send(()).ok();
                    }
                    None => normal_open = false,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.deliver(std::mem::take(&mut pending)).await;
                    deadline = None;
                }
            }
        }
        self.deliver(pending).await;
    }

    /// Sends `lines` until the server takes them, spooling them after
    /// `tries_before_spool` failures when there is a spool.
    async fn deliver(&mut self, mut lines: Vec<String>) {
        let mut failures = 0u32;
        let mut pause = Duration::from_millis(100);
        while !lines.is_empty() {
            match self.post(&lines).await {
                Sent::Done => {
                    // The server answers again: whatever waits on disk goes next.
                    if failures > 0 {
                        self.replay_spool().await;
                    }
                    return;
                }
                Sent::Again(again, retry_after) => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    failures += 1;
                    lines = again;
                    if failures >= self.config.tries_before_spool
                        && let Some(spool) = &mut self.spool
                    {
                        match spool.push(&lines) {
                            Ok(()) => {
                                self.counters
                                    .spooled
                                    .fetch_add(lines.len() as u64, Ordering::Relaxed);
                                return;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "evident client: spool refused a batch; retrying in memory")
                            }
                        }
                    }
                    tokio::time::sleep(retry_after.max(pause)).await;
                    pause = (pause * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    /// Sends the spooled batches, oldest first, while the server takes them.
    async fn replay_spool(&mut self) {
        loop {
            let Some(spool) = &self.spool else { return };
            let (path, lines) = match spool.oldest() {
                Ok(Some(batch)) => batch,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "evident client: spool unreadable");
                    return;
                }
            };
            match self.post(&lines).await {
                Sent::Done => {
                    if let Some(spool) = &self.spool
                        && let Err(error) = spool.remove(&path)
                    {
                        tracing::warn!(%error, "evident client: sent spool batch not removed; it will be sent again (stored once)");
                        return;
                    }
                }
                Sent::Again(..) => return,
            }
        }
    }

    /// One request for `lines`.
    async fn post(&self, lines: &[String]) -> Sent {
        let mut body = lines.join("\n");
        body.push('\n');
        let response = self
            .http
            .post(format!("{}/api/v1/events", self.config.url))
            .bearer_auth(&self.config.key)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%error, "evident client: request failed");
                return Sent::Again(lines.to_vec(), Duration::ZERO);
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_secs);
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let errors = answer["errors"].as_array().cloned().unwrap_or_default();
        let overloaded: Vec<usize> = errors
            .iter()
            .filter(|e| {
                e["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("overloaded"))
            })
            .filter_map(|e| e["index"].as_u64().map(|i| i as usize))
            .collect();
        let rejected = answer["rejected"].as_u64().unwrap_or(0) as usize;
        let invalid = rejected.saturating_sub(overloaded.len());
        match status {
            202 | 400 => {
                self.counters
                    .stored
                    .fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                if invalid > 0 {
                    self.counters
                        .refused
                        .fetch_add(invalid as u64, Ordering::Relaxed);
                    let first = errors.first().cloned().unwrap_or_default();
                    tracing::warn!(refused = invalid, %first, "evident refused events as invalid");
                }
                Sent::Done
            }
            429 if !overloaded.is_empty() => {
                self.counters
                    .stored
                    .fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                let again = overloaded
                    .into_iter()
                    .filter_map(|i| lines.get(i).cloned())
                    .collect();
                Sent::Again(again, retry_after)
            }
            401 | 403 | 413 | 415 => {
                // Sending again cannot help: say so loudly, and keep the events on disk
                // when there is a spool (a fixed key can send them later).
                tracing::error!(status, answer = %answer["error"], "evident refused the request");
                Sent::Again(lines.to_vec(), self.config.max_backoff)
            }
            _ => Sent::Again(lines.to_vec(), retry_after),
        }
    }
}

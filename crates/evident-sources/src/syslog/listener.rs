//! The syslog listeners: UDP, TCP and TLS sockets, each message framed, batched and
//! handed to the ingestor.
//!
//! What each path can lose:
//! - **TCP and TLS**: nothing accepted while the process lives. A connection's messages
//!   go to the ingestor a batch at a time and the connection is not read again until
//!   the batch is queued; events refused because their priority's queue is full are
//!   offered again (pausing 10 ms, doubling to 1 s) before anything more is read, so a
//!   full queue slows the sender through TCP's own flow control. On SIGTERM the
//!   listeners stop accepting, read what senders already wrote (until a sender pauses
//!   for 200 ms, 5 s at most), queue it, and the pipeline commits it before the
//!   process ends. Queued events not yet committed are lost if the process is
//!   killed outright (syslog has no acknowledgements to hold them with).
//! - **UDP**: the sender cannot be slowed. Datagrams wait in a bounded queue for the
//!   ingestor; when it is full they are dropped and counted
//!   (`evident_syslog_dropped_total{transport="udp"}`), as are datagrams the kernel
//!   dropped before evident read them (not visible here: see `netstat -su`).

use super::framing::{Cut, Framer};
use super::message::{Received, Transport, to_event};
use super::networks::Networks;
use crate::ingestor::{Context, IngestError, Ingestor, RawInput};
use evident_ingest::decode::RawItem;
use evident_ingest::{DecodeError, Limits};
use evident_pipeline::Ack;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Metric: syslog messages by transport and what became of them (`received`, `queued`,
/// `duplicate`, `invalid`, `dropped`).
pub const MESSAGES: &str = "evident_syslog_messages_total";
/// Metric: syslog messages dropped, by transport and reason (`queue_full` for UDP,
/// `shutting_down`).
pub const DROPPED: &str = "evident_syslog_dropped_total";
/// Metric: messages longer than the limit, cut and stored marked (`data.syslog.cut`).
pub const CUT: &str = "evident_syslog_cut_total";
/// Metric: batches offered again because their priority's queue was full.
pub const RETRIED: &str = "evident_syslog_retried_total";
/// Metric: open TCP and TLS connections.
pub const CONNECTIONS: &str = "evident_syslog_connections";

/// On stop, a connection is read until the sender pauses this long...
const DRAIN_IDLE: Duration = Duration::from_millis(200);
/// ...or for this long at most.
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// A TLS listener: address and PEM files.
#[derive(Debug, Clone)]
pub struct TlsListen {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

/// Where and how to take syslog.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// UDP address, if any.
    pub udp: Option<SocketAddr>,
    /// TCP address, if any.
    pub tcp: Option<SocketAddr>,
    /// TLS listener, if any.
    pub tls: Option<TlsListen>,
    /// Sender networks → facility.
    pub networks: Networks,
    /// Longest message kept; longer ones are cut and marked.
    pub max_message_bytes: usize,
    /// Messages handed to the ingestor at once, at most.
    pub batch: usize,
    /// Longest a read message waits for its batch to fill.
    pub linger: Duration,
    /// UDP datagrams that may wait for the ingestor before new ones are dropped.
    pub udp_queue: usize,
    /// Open TCP and TLS connections at most; more are closed at once.
    pub max_connections: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            tls: None,
            networks: Networks::default(),
            max_message_bytes: 32 * 1024,
            batch: 1000,
            linger: Duration::from_millis(20),
            udp_queue: 50_000,
            max_connections: 1024,
        }
    }
}

impl SyslogConfig {
    /// Whether any listener is configured.
    pub fn any(&self) -> bool {
        self.udp.is_some() || self.tcp.is_some() || self.tls.is_some()
    }
}

/// A listener that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address could not be bound.
    #[error("cannot listen for syslog over {transport} on {addr}: {source}")]
    Bind {
        /// udp, tcp or tls.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("syslog TLS: {0}")]
    Tls(String),
}

/// The addresses the listeners are bound to (port 0 resolved).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bound {
    /// UDP.
    pub udp: Option<SocketAddr>,
    /// TCP.
    pub tcp: Option<SocketAddr>,
    /// TLS.
    pub tls: Option<SocketAddr>,
}

/// Running listeners. [`Listeners::stop`] ends them after queueing what they read.
pub struct Listeners {
    bound: Bound,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

struct Shared {
    ingestor: Ingestor,
    networks: Arc<Networks>,
    config: SyslogConfig,
    connections: Arc<Semaphore>,
}

impl Listeners {
    /// Binds every configured listener and starts taking messages into `ingestor`.
    pub async fn start(config: SyslogConfig, ingestor: Ingestor) -> Result<Self, ListenError> {
        let (stop, stopping) = watch::channel(false);
        let shared = Arc::new(Shared {
            ingestor,
            networks: Arc::new(config.networks.clone()),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            config: config.clone(),
        });
        let mut tasks = JoinSet::new();
        let mut bound = Bound::default();
        if let Some(addr) = config.udp {
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|source| ListenError::Bind {
                    transport: "udp",
                    addr,
                    source,
                })?;
            bound.udp = socket.local_addr().ok();
            let (queue, batches) = mpsc::channel(config.udp_queue.max(1));
            tasks.spawn(read_udp(
                socket,
                queue,
                config.max_message_bytes,
                stopping.clone(),
            ));
            tasks.spawn(deliver_queue(shared.clone(), batches));
        }
        if let Some(addr) = config.tcp {
            let listener = bind_tcp(addr, "tcp").await?;
            bound.tcp = listener.local_addr().ok();
            tasks.spawn(accept(listener, None, shared.clone(), stopping.clone()));
        }
        if let Some(tls) = &config.tls {
            let acceptor = super::tls::acceptor(&tls.cert, &tls.key).map_err(ListenError::Tls)?;
            let listener = bind_tcp(tls.addr, "tls").await?;
            bound.tls = listener.local_addr().ok();
            tasks.spawn(accept(
                listener,
                Some(acceptor),
                shared.clone(),
                stopping.clone(),
            ));
        }
        Ok(Self { bound, stop, tasks })
    }

    /// Where the listeners are.
    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// Stops reading, queues every message already read, and returns once that is done.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn bind_tcp(addr: SocketAddr, transport: &'static str) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Bind {
            transport,
            addr,
            source,
        })
}

/// Reads datagrams into the queue; a full queue drops them, counted.
async fn read_udp(
    socket: UdpSocket,
    queue: mpsc::Sender<Received>,
    max: usize,
    mut stopping: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    let received = metrics::counter!(MESSAGES, "transport" => "udp", "outcome" => "received");
    let dropped = metrics::counter!(DROPPED, "transport" => "udp", "reason" => "queue_full");
    loop {
        let (n, peer) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(error) => {
                    tracing::warn!(%error, "syslog udp receive failed");
                    continue;
                }
            },
            _ = stopping.changed() => break,
        };
        received.increment(1);
        let mut framer = Framer::new(max);
        framer.push(&buf[..n]);
        // One datagram is one message (RFC 5426), whatever it ends with.
        let Some(frame) = framer.finish() else {
            continue;
        };
        let message = Received {
            cut: frame.cut.map(|_| Cut::Counted(n)),
            bytes: frame.bytes,
            peer: peer.ip(),
            transport: Transport::Udp,
            refused: None,
        };
        if queue.try_send(message).is_err() {
            dropped.increment(1);
        }
    }
}

/// Takes the UDP queue in batches to the ingestor, until the reader stops and the queue
/// is empty.
async fn deliver_queue(shared: Arc<Shared>, mut batches: mpsc::Receiver<Received>) {
    let batch = shared.config.batch.max(1);
    let mut pending = Vec::with_capacity(batch);
    loop {
        let n = batches.recv_many(&mut pending, batch).await;
        if n == 0 {
            break;
        }
        // Give a trickle a moment to become a batch.
        if pending.len() < batch {
            let deadline = Instant::now() + shared.config.linger;
            while pending.len() < batch {
                match tokio::time::timeout_at(deadline, batches.recv()).await {
                    Ok(Some(message)) => pending.push(message),
                    _ => break,
                }
            }
        }
        deliver(&shared, std::mem::take(&mut pending), Transport::Udp).await;
    }
}

/// Accepts connections (TLS ones through `acceptor`) until stopped; then waits for the
/// open connections to queue what they read.
async fn accept(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
) {
    let transport = if acceptor.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(error) => {
                    tracing::warn!(%error, "syslog accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping.changed() => break,
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "syslog connection refused: at the connection cap");
            continue;
        };
        stream.set_nodelay(true).ok();
        let shared = shared.clone();
        let stopping = stopping.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let gauge = metrics::gauge!(CONNECTIONS, "transport" => transport.as_str());
            gauge.increment(1.0);
            match acceptor {
                None => read_stream(stream, peer.ip(), transport, &shared, stopping).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            read_stream(tls, peer.ip(), transport, &shared, stopping).await
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(%peer, %error, "syslog TLS handshake failed")
                        }
                        Err(_) => tracing::warn!(%peer, "syslog TLS handshake timed out"),
                    }
                }
            }
            gauge.decrement(1.0);
            drop(permit);
        });
        // Reap finished connections as we go.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// Reads one connection's messages, a batch at a time, until it closes or the
/// listeners stop; every message read is queued before this returns.
async fn read_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: IpAddr,
    transport: Transport,
    shared: &Shared,
    mut stopping: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let batch = config.batch.max(1);
    let received =
        metrics::counter!(MESSAGES, "transport" => transport.as_str(), "outcome" => "received");
    let mut framer = Framer::new(config.max_message_bytes);
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<Received> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let message = |frame: super::framing::Frame| Received {
        bytes: frame.bytes,
        cut: frame.cut,
        peer,
        transport,
        refused: None,
    };
    // Once stopping, what the sender already wrote is still read (until it pauses for
    // DRAIN_IDLE, at most DRAIN_MAX), so a restart loses nothing a sender had sent.
    let mut drain_until: Option<Instant> = None;
    loop {
        let read = if let Some(until) = drain_until {
            let idle = Instant::now() + DRAIN_IDLE;
            match tokio::time::timeout_at(idle.min(until), stream.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                r = stream.read(&mut buf) => r,
                _ = stopping.changed() => {
                    drain_until = Some(Instant::now() + DRAIN_MAX);
                    continue;
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    deliver(shared, std::mem::take(&mut pending), transport).await;
                    deadline = None;
                    continue;
                }
            }
        };
        match read {
            Ok(0) => {
                if let Some(frame) = framer.finish() {
                    received.increment(1);
                    pending.push(message(frame));
                }
                break;
            }
            Ok(n) => {
                framer.push(&buf[..n]);
                while let Some(frame) = framer.next_frame() {
                    received.increment(1);
                    pending.push(message(frame));
                    if pending.len() >= batch {
                        deliver(shared, std::mem::take(&mut pending), transport).await;
                        deadline = None;
                    }
                }
                if !pending.is_empty() && deadline.is_none() {
                    deadline = Some(Instant::now() + config.linger);
                }
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "syslog connection ended");
                break;
            }
        }
    }
    deliver(shared, pending, transport).await;
}

/// Hands `messages` to the ingestor, offering again those refused for overload until
/// every one is queued.
async fn deliver(shared: &Shared, mut messages: Vec<Received>, transport: Transport) {
    let t = transport.as_str();
    let mut pause = Duration::from_millis(10);
    while !messages.is_empty() {
        let cut = messages.iter().filter(|m| m.cut.is_some()).count();
        let input = Batch {
            messages: messages.clone(),
            networks: shared.networks.clone(),
            now: OffsetDateTime::now_utc(),
        };
        let context = Context {
            ack: Ack::Queued,
            key: None,
        };
        match shared.ingestor.ingest(input, context).await {
            Ok(report) => {
                let counts = report.counts();
                metrics::counter!(CUT, "transport" => t).increment(cut as u64);
                metrics::counter!(MESSAGES, "transport" => t, "outcome" => "queued")
                    .increment((counts.queued + counts.stored + counts.folded) as u64);
                metrics::counter!(MESSAGES, "transport" => t, "outcome" => "duplicate")
                    .increment(counts.duplicates as u64);
                // A message whose event admission refused (a JSON message that is not
                // a valid event) is kept as text, with the reason, not dropped.
                let mut again: Vec<Received> = Vec::new();
                for rejection in &report.rejected {
                    let message = &messages[rejection.index];
                    if message.refused.is_some() {
                        metrics::counter!(MESSAGES, "transport" => t, "outcome" => "invalid")
                            .increment(1);
                        tracing::warn!(
                            transport = t,
                            ?rejection,
                            "syslog message refused even as text"
                        );
                        continue;
                    }
                    let reason = rejection
                        .errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.reason))
                        .collect::<Vec<_>>()
                        .join("; ");
                    again.push(Received {
                        refused: Some(reason),
                        ..message.clone()
                    });
                }
                let overloaded = report.overloaded().count();
                again.extend(report.overloaded().map(|i| messages[i].clone()));
                if again.is_empty() {
                    return;
                }
                if overloaded > 0 {
                    metrics::counter!(RETRIED, "transport" => t).increment(1);
                } else {
                    // Only refused messages to keep as text: no need to wait.
                    pause = Duration::ZERO;
                }
                messages = again;
            }
            Err(IngestError::Decode(error)) => {
                // A batch of messages always decodes; say so loudly if not.
                tracing::error!(%error, "syslog batch could not be decoded");
                metrics::counter!(MESSAGES, "transport" => t, "outcome" => "invalid")
                    .increment(messages.len() as u64);
                return;
            }
            Err(error) => {
                // The key store failed or the service is stopping: try again shortly;
                // the pipeline outlives the listeners, so a stop still gets through.
                tracing::warn!(%error, transport = t, "syslog batch not taken yet; retrying");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    }
}

/// A batch of received messages as raw input for the ingestor.
struct Batch {
    messages: Vec<Received>,
    networks: Arc<Networks>,
    now: OffsetDateTime,
}

impl RawInput for Batch {
    fn weight(&self) -> usize {
        self.messages.iter().map(|m| m.bytes.len()).sum()
    }

    fn decode(self, _limits: &Limits) -> Result<Vec<(Option<usize>, RawItem)>, DecodeError> {
        Ok(self
            .messages
            .iter()
            .map(|m| (None, Ok(to_event(m, &self.networks, self.now))))
            .collect())
    }
}

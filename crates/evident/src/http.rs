//! The HTTP/1 server loop: accepts connections up to a cap and closes the ones that hold
//! a slot without using it.
//!
//! - **Header timeout**: a request's headers must arrive within it, counted from the
//!   connection's accept for its first request and from the first byte for a later one
//!   (a client trickling a header byte by byte is cut off).
//! - **Idle timeout**: a kept-alive connection with no request in progress is closed
//!   after it.
//! - **Connection cap**: the process never holds more connections, so file descriptors
//!   stay free for its store and rule files. A connection accepted at the cap takes the
//!   slot of the connection idle the longest (no request in progress), which is closed:
//!   a flood of idle connections cannot lock clients out. When every connection is busy
//!   with a request, the server stops accepting and new connections wait in the
//!   kernel's listen backlog until one ends.
//!
//! SIGTERM (the `shutdown` future) stops accepting, lets requests in progress finish and
//! closes idle connections.

use axum::Router;
use axum::body::{Body, HttpBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower_service::Service;

/// Limits on connections; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// File descriptors kept for the store, the journal, the key stores, rule files and
/// outgoing connections when the connection cap is derived from the process's limit.
pub const FD_RESERVE: u64 = 512;
/// The smallest connection cap derived from the process's limit.
const MIN_CONNECTIONS: u64 = 64;

/// Raises the process's soft limit on open files to its hard limit; returns the limit
/// now in force.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if limit.current.is_none() || limit.current == limit.maximum {
        return soft;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum.unwrap_or(u64::MAX),
        Err(error) => {
            tracing::warn!(%error, soft, "cannot raise the open file limit");
            soft
        }
    }
}

/// The connection cap for an open file limit of `files`: all but [`FD_RESERVE`].
pub fn default_max_connections(files: u64) -> usize {
    let cap = files.saturating_sub(FD_RESERVE).max(MIN_CONNECTIONS);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes, then waits for
/// the requests in progress.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !registry.evict_idlest() {
                    tracing::debug!("every connection is busy; waiting for one to end");
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let app = app.clone();
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        let entry = registry.add();
        tokio::spawn(async move {
            serve_connection(stream, app, limits, stop, entry.activity.clone()).await;
            drop(entry);
            drop(slot);
            drop(done);
        });
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(done_tx);
    // Every connection task holds a sender; the channel closes when the last one ends.
    let mut done_rx = done_rx;
    while done_rx.recv().await.is_some() {}
}

/// After a failed accept: connection errors concern that connection only; anything else
/// (out of file descriptors) gets a pause so the loop does not spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "cannot accept a connection; pausing");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// One connection: HTTP/1 with upgrades, watched for the header and idle timeouts.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ConnLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    watch: Arc<Activity>,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        watch: watch.clone(),
    });
    let service = {
        let watch = watch.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::start(watch.clone());
            let mut app = app.clone();
            async move {
                let response = app
                    .call(request.map(Body::new))
                    .await
                    .unwrap_or_else(|never| match never {});
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(Guarded {
                        inner: body,
                        _busy: busy,
                    })
                }))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = watch.deadline(&limits);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = watch.evict.notified() => {
                if watch.busy.load(Ordering::Acquire) == 0 {
                    tracing::debug!("closing an idle connection to make room for a new one");
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                if watch.expired(&limits) {
                    tracing::debug!("closing a connection past its header or idle timeout");
                    return;
                }
            }
        }
    }
}

/// What a connection is doing, shared by its reader, its requests and its watchdog.
/// Times are microseconds since `start`; [`Activity::NONE`] means unset.
struct Activity {
    start: Instant,
    /// Requests whose response has not been sent in full.
    busy: AtomicUsize,
    /// When the next request's first byte arrived (the accept, for the first request).
    head_started: AtomicU64,
    /// When the connection last became idle after a response.
    idle_since: AtomicU64,
    /// Told to close because its slot is wanted.
    evict: tokio::sync::Notify,
}

impl Activity {
    const NONE: u64 = u64::MAX;

    fn new() -> Self {
        Self {
            start: Instant::now(),
            busy: AtomicUsize::new(0),
            head_started: AtomicU64::new(0),
            idle_since: AtomicU64::new(Self::NONE),
            evict: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, micros: u64) -> Instant {
        self.start + Duration::from_micros(micros)
    }

    /// When the connection is due to be closed unless something happens first; while a
    /// request is in progress, a time to look again.
    fn deadline(&self, limits: &ConnLimits) -> Instant {
        let recheck = Instant::now() + limits.header_timeout.min(limits.idle_timeout);
        if self.busy.load(Ordering::Acquire) > 0 {
            return recheck;
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head != Self::NONE {
            return self.at(head) + limits.header_timeout;
        }
        match self.idle_since.load(Ordering::Acquire) {
            Self::NONE => recheck,
            idle => self.at(idle) + limits.idle_timeout,
        }
    }

    /// Since when the connection has waited for a request (earliest first when choosing
    /// one to close); `None` while a request is in progress.
    fn waiting_since(&self) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Acquire) {
            Self::NONE => match self.idle_since.load(Ordering::Acquire) {
                Self::NONE => None,
                idle => Some(self.at(idle)),
            },
            head => Some(self.at(head)),
        }
    }

    /// Whether the connection is past its deadline now.
    fn expired(&self, limits: &ConnLimits) -> bool {
        self.busy.load(Ordering::Acquire) == 0 && self.deadline(limits) <= Instant::now()
    }

    /// Bytes arrived: on an idle connection, a request's head has begun.
    fn read_some(&self) {
        if self.busy.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == Self::NONE
        {
            self.head_started.store(self.now(), Ordering::Release);
        }
    }
}

/// The open connections, to choose one to close when the cap is reached.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    fn add(self: &Arc<Self>) -> Entry {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        self.lock().insert(id, activity.clone());
        Entry {
            id,
            activity,
            registry: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<Activity>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells the connection waiting longest for a request to close; false when every
    /// connection is busy.
    fn evict_idlest(&self) -> bool {
        let open = self.lock();
        let idlest = open
            .values()
            .filter_map(|a| a.waiting_since().map(|since| (since, a)))
            .min_by_key(|(since, _)| *since);
        match idlest {
            Some((_, activity)) => {
                activity.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the [`Registry`], left when dropped.
struct Entry {
    id: u64,
    activity: Arc<Activity>,
    registry: Arc<Registry>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// A request in progress, from its parsed head until its response body is sent or dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        activity
            .head_started
            .store(Activity::NONE, Ordering::Release);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.now();
        self.0.idle_since.store(now, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that marks its request done when dropped.
struct Guarded {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, noting when bytes arrive.
struct Watched {
    inner: TcpStream,
    watch: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.read_some();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        }
    }

    #[test]
    fn a_new_connection_gets_the_header_timeout_a_kept_alive_one_the_idle_timeout() {
        let activity = Arc::new(Activity::new());
        let start = activity.start;
        assert_eq!(
            activity.deadline(&limits()),
            start + Duration::from_secs(10)
        );
        let busy = Busy::start(activity.clone());
        activity.read_some(); // a request body: no new head
        assert!(!activity.expired(&limits()));
        drop(busy);
        let idle = activity.at(activity.idle_since.load(Ordering::Acquire));
        assert_eq!(activity.deadline(&limits()), idle + Duration::from_secs(60));
        activity.read_some();
        let head = activity.at(activity.head_started.load(Ordering::Acquire));
        assert_eq!(activity.deadline(&limits()), head + Duration::from_secs(10));
    }
}

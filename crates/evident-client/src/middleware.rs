//! A tower [`Layer`] for axum / hyper apps: each request the options select becomes an
//! `api.access` event (or `api.error` for a status of 400 and up), with method, path,
//! status and latency, sent through a [`Client`] without ever making the request wait.

use crate::client::Client;
use crate::event::{Event, Outcome, Priority, Severity};
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// Which requests become events, and at what priority (the seeds' middleware options).
#[derive(Debug, Clone)]
pub struct MiddlewareOptions {
    /// Every request (default: no).
    pub log_all: bool,
    /// Requests under [`api_prefix`](Self::api_prefix) (default: yes).
    pub log_api: bool,
    /// Requests under [`admin_prefix`](Self::admin_prefix) (default: yes).
    pub log_admin: bool,
    /// Requests answered with 400 or more (default: yes).
    pub log_errors: bool,
    /// What starts an API path (default `/api`).
    pub api_prefix: String,
    /// What starts an admin path (default `/admin`).
    pub admin_prefix: String,
    /// Paths (prefixes) never logged (default `/health`, `/metrics`, `/static`,
    /// `/favicon.ico`).
    pub exclude_paths: Vec<String>,
    /// Request headers copied into `data.headers` (default none; never copy
    /// `authorization` or `cookie`).
    pub include_headers: Vec<String>,
    /// Priority of requests logged by `log_all` alone.
    pub request_priority: Priority,
    /// Priority of API requests.
    pub api_priority: Priority,
    /// Priority of admin requests.
    pub admin_priority: Priority,
    /// Priority of errors.
    pub error_priority: Priority,
    /// The `source` of the events (default `app`).
    pub source: String,
}

impl Default for MiddlewareOptions {
    fn default() -> Self {
        Self {
            log_all: false,
            log_api: true,
            log_admin: true,
            log_errors: true,
            api_prefix: "/api".into(),
            admin_prefix: "/admin".into(),
            exclude_paths: ["/health", "/metrics", "/static", "/favicon.ico"]
                .map(String::from)
                .to_vec(),
            include_headers: Vec::new(),
            request_priority: Priority::Info,
            api_priority: Priority::Low,
            admin_priority: Priority::Medium,
            error_priority: Priority::High,
            source: "app".into(),
        }
    }
}

/// The layer: wrap a router or service with it.
///
/// ```no_run
/// use evident_client::middleware::{EvidentLayer, MiddlewareOptions};
/// # fn app(client: evident_client::Client) -> axum::Router {
/// axum::Router::new()
///     .route("/api/orders", axum::routing::get(|| async { "[]" }))
///     .layer(EvidentLayer::new(client, MiddlewareOptions::default()))
/// # }
/// ```
#[derive(Clone)]
pub struct EvidentLayer {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    options: MiddlewareOptions,
    dropped: AtomicU64,
}

impl EvidentLayer {
    /// A layer sending through `client` with `options`.
    pub fn new(client: Client, options: MiddlewareOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                options,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Events not sent because the client's queue was full (the request never waits).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for EvidentLayer {
    type Service = EvidentService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EvidentService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service the layer makes.
#[derive(Clone)]
pub struct EvidentService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What is kept of a request until its answer.
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    ip: Option<String>,
    user_agent: Option<String>,
    started: Instant,
}

impl<S, B, R> Service<Request<B>> for EvidentService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let options = &self.shared.options;
        let path = request.uri().path().to_owned();
        let excluded = options
            .exclude_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()));
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let seen = (!excluded).then(|| Seen {
            method: request.method().to_string(),
            headers: options
                .include_headers
                .iter()
                .filter_map(|name| header(name).map(|v| (name.to_ascii_lowercase(), v)))
                .collect(),
            ip: header("x-forwarded-for")
                .and_then(|v| v.split(',').next().map(|s| s.trim().to_owned()))
                .or_else(|| header("x-real-ip")),
            user_agent: header("user-agent"),
            path,
            started: Instant::now(),
        });
        let future = self.inner.call(request);
        let shared = self.shared.clone();
        Box::pin(async move {
            let result = future.await;
            if let Some(seen) = seen {
                let status = result.as_ref().map(|r| r.status().as_u16()).ok();
                if let Some(event) = shared.event(seen, status)
                    && shared.client.try_send(event).is_err()
                {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            result
        })
    }
}

impl Shared {
    /// The event for a request answered with `status` (`None`: the service failed), if
    /// the options select it.
    fn event(&self, seen: Seen, status: Option<u16>) -> Option<Event> {
        let o = &self.options;
        let is_api = seen.path.starts_with(o.api_prefix.as_str());
        let is_admin = seen.path.starts_with(o.admin_prefix.as_str());
        let is_error = status.is_none_or(|s| s >= 400);
        let wanted = o.log_all
            || (is_api && o.log_api)
            || (is_admin && o.log_admin)
            || (is_error && o.log_errors);
        if !wanted {
            return None;
        }
        let priority = if is_error {
            o.error_priority
        } else if is_admin {
            o.admin_priority
        } else if is_api {
            o.api_priority
        } else {
            o.request_priority
        };
        let severity = match status {
            None | Some(500..) => Severity::High,
            Some(400..) => Severity::Medium,
            _ => Severity::Info,
        };
        let latency_ms = seen.started.elapsed().as_secs_f64() * 1000.0;
        let mut event = Event::new(if is_error { "api.error" } else { "api.access" })
            .category("api")
            .source(&o.source)
            .severity(severity)
            .priority(priority)
            .outcome(if is_error {
                Outcome::Failure
            } else {
                Outcome::Success
            })
            .target("resource", seen.path.as_str())
            .data("method", seen.method)
            .data("path", seen.path)
            .data("latency_ms", (latency_ms * 1000.0).round() / 1000.0);
        event = match status {
            Some(status) => event.data("status", status),
            None => event.data("status", serde_json::Value::Null),
        };
        if let Some(ip) = seen.ip {
            event = event.ip(&ip);
        }
        if let Some(agent) = seen.user_agent {
            event = event.user_agent(&agent);
        }
        if !seen.headers.is_empty() {
            let headers: serde_json::Map<String, serde_json::Value> = seen
                .headers
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::from(v)))
                .collect();
            event = event.data("headers", serde_json::Value::Object(headers));
        }
        Some(event)
    }
}

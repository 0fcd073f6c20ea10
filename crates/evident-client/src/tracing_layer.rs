//! A `tracing` [`Layer`] that turns the application's tracing events of one target
//! (`security` by default) into security events: the Rust counterpart of hooking the
//! collector into the application's logger.
//!
//! Fields with these names fill the event: `event_type` (or `type`; default
//! `app.security`), `user` / `user_id`, `ip`, `facility`, `outcome`, `category`,
//! `correlation_id`; every other field goes to `data`, and the message to
//! `data.message`. The level gives the severity: ERROR high, WARN medium, INFO low,
//! DEBUG and TRACE info.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! # fn install(client: evident_client::Client) {
//! let subscriber = tracing_subscriber::registry()
//!     .with(evident_client::tracing_layer::EvidentTracingLayer::new(client));
//! tracing::subscriber::set_global_default(subscriber).unwrap();
//! tracing::warn!(target: "security", event_type = "auth.login.failure", user = "op7", ip = "10.20.4.31", "bad password");
//! # }
//! ```

use crate::client::Client;
use crate::event::{Event, Outcome, Severity};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_core::field::{Field, Visit};
use tracing_core::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// The layer.
pub struct EvidentTracingLayer {
    client: Client,
    target: String,
    source: String,
    dropped: AtomicU64,
}

impl EvidentTracingLayer {
    /// Sends the events of target `security` (and `security::*`) through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            target: "security".into(),
            source: "app".into(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Takes the events of this target instead.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// The `source` of the events (default `app`).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Events not sent because the client's queue was full (logging never waits).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn wants(&self, target: &str) -> bool {
        target == self.target
            || target
                .strip_prefix(self.target.as_str())
                .is_some_and(|rest| rest.starts_with("::"))
    }
}

/// The fields of one tracing event.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

impl<S: Subscriber> Layer<S> for EvidentTracingLayer {
    fn on_event(&self, event: &tracing_core::Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if !self.wants(metadata.target()) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut fields = fields.0;
        let text = |fields: &mut Map<String, Value>, name: &str| {
            fields.remove(name).map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
        };
        let event_type = text(&mut fields, "event_type")
            .or_else(|| text(&mut fields, "type"))
            .unwrap_or_else(|| "app.security".into());
        let severity = match *metadata.level() {
            Level::ERROR => Severity::High,
            Level::WARN => Severity::Medium,
            Level::INFO => Severity::Low,
            _ => Severity::Info,
        };
        let mut out = Event::new(event_type)
            .severity(severity)
            .source(&self.source);
        if let Some(user) = text(&mut fields, "user").or_else(|| text(&mut fields, "user_id")) {
            out = out.user(&user);
        }
        if let Some(ip) = text(&mut fields, "ip") {
            out = out.ip(&ip);
        }
        if let Some(facility) = text(&mut fields, "facility") {
            out = out.facility(&facility);
        }
        if let Some(category) = text(&mut fields, "category") {
            out = out.category(&category);
        }
        if let Some(id) = text(&mut fields, "correlation_id") {
            out = out.correlation_id(&id);
        }
        match text(&mut fields, "outcome").as_deref() {
            Some("success") => out = out.outcome(Outcome::Success),
            Some("failure") => out = out.outcome(Outcome::Failure),
            _ => {}
        }
        for (name, value) in fields {
            out = out.data(&name, value);
        }
        if self.client.try_send(out).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

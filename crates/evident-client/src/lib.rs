//! The Rust SDK for evident: send security events from an application's own code.
//!
//! - [`event`]: [`Event`], a typed security event in evident's canonical shape, built
//!   field by field; its id is made when it is built, so a retry is stored once.
//! - [`client`]: [`Client`], which queues events (critical ones ahead of the rest),
//!   sends them in batches over HTTP, retries with backoff (honouring `Retry-After`),
//!   and, with a spool directory, keeps batches on disk while the server cannot be
//!   reached and sends them when it can. [`Client::flush`] waits until everything sent
//!   before it is stored (or spooled); [`Client::shutdown`] flushes and stops.
//! - [`spool`]: the on-disk spool.
//! - [`middleware`]: a tower `Layer` for axum / hyper apps that turns requests into
//!   `api.access` / `api.error` events (the seeds' middleware options).
//! - [`tracing_layer`]: a `tracing` `Layer` that turns tracing events of one target
//!   (`security`) into security events.
//!
//! ```no_run
//! use evident_client::{Client, Config, Event, Severity};
//!
//! # async fn run() -> Result<(), evident_client::ClientError> {
//! let client = Client::start(Config::new("http://127.0.0.1:8080", "ek_..."))?;
//! client
//!     .send(
//!         Event::new("auth.login.failure")
//!             .severity(Severity::Medium)
//!             .user("operator7")
//!             .ip("10.20.4.31")
//!             .facility("plant-a")
//!             .data("reason", "bad password"),
//!     )
//!     .await?;
//! client.shutdown().await?;
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod event;
pub mod middleware;
pub mod spool;
pub mod tracing_layer;

pub use client::{Client, ClientError, Config, Stats};
pub use event::{Event, Outcome, Priority, Severity};

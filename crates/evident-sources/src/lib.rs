//! evident's sources: every way events come in, and the one ingestor they all go through.
//!
//! # Layout
//!
//! - [`ingestor`]: the seam. An [`Ingestor`] takes raw input from any source (anything
//!   that implements [`RawInput`]), decodes, normalizes and validates it (evident-ingest),
//!   runs the [`Transform`]s (sealing personal data), encodes each event once and hands
//!   the events to a [`Sink`] (the local priority lanes and commit), answering with one
//!   [`Report`].
//! - [`http`]: request bodies (JSON, NDJSON, gzip) as raw input, and the HTTP answer a
//!   [`Report`] makes (202, 400, 429 or 503 with the per-event outcomes).
//! - [`syslog`]: UDP, TCP and TLS listeners, RFC 5424 / 3164 messages, and the parsers
//!   (sshd, PAM, sudo, su, account tools, auditd, CEF, LEEF) that make typed events.
//!
//! Sources are thin: they read bytes, say what they read, and turn the report into
//! their own kind of answer (an HTTP response, syslog counters).

pub mod http;
pub mod ingestor;
pub mod syslog;

pub use ingestor::{
    Context, IngestError, Ingestor, IngestorConfig, RawInput, Report, Sink, SinkError, Taken,
    Transform, TransformError, Verdict,
};

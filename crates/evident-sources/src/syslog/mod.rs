//! Syslog as a source: UDP, TCP (octet-counted or newline-framed) and TLS listeners,
//! RFC 5424 and RFC 3164 messages, and parsers that make typed events of what hosts and
//! appliances log.
//!
//! - [`framing`]: where one message ends on a stream, within a size limit.
//! - [`message`]: one message as a raw event in the canonical shape (header fields,
//!   the sender's address, the facility of its network, the parser's fields).
//! - [`parsers`]: sshd, PAM, sudo and su, the account tools, auditd, CEF and LEEF.
//! - [`networks`]: sender networks → facility.
//! - [`listener`]: the sockets, batching into the ingestor, and what each path can lose.
//! - [`tls`]: the TLS identity from PEM files.

pub mod framing;
pub mod listener;
pub mod message;
pub mod networks;
pub mod parsers;
pub mod tls;

pub use listener::{Bound, ListenError, Listeners, SyslogConfig, TlsListen};
pub use message::{Received, Transport, UNPARSED_TYPE, to_event};
pub use networks::{NetworkError, Networks};

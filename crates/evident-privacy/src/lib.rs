//! evident's personal data protection: field encryption under per-subject keys,
//! pseudonyms, and erasure.
//!
//! # What is protected
//!
//! Some fields of an event are personal: by default `actor.user_id`, `actor.ip` and
//! `actor.user_agent`; `actor.session_id` and any `data.<dotted.path>` can be added (see
//! [`PersonalField`]). Before an event is stored, [`Privacy::seal`] encrypts the value of
//! every configured personal field it carries with AES-256-GCM, and replaces the field
//! itself by a pseudonym of its value. The ciphertexts go into the event's
//! [`Sealed`](evident_model::Sealed) part, keyed by field path.
//!
//! # Pseudonyms
//!
//! A pseudonym is a keyed hash (HMAC-SHA256 under a key derived from the master key) of
//! the value, truncated to 128 bits: `ps_` followed by 22 base64url characters (see
//! [`Pseudonyms`]). Equal values give equal pseudonyms, so detection rules that count or
//! group by user or address, and equality queries on pseudonyms, keep working on sealed
//! events; without the master key a pseudonym cannot be traced back to its value, nor
//! can a guessed value be checked against it.
//!
//! # Subjects and their keys
//!
//! Every sealed event belongs to one subject: the value of the first personal field
//! present in the event, in configured order (with the defaults: the user id, else the
//! address, else the user agent). The subject's key id is the subject's pseudonym, and
//! each subject has its own random 256-bit data key. All personal fields of the event are
//! encrypted under that key, bound (as associated data) to the key id, the event id and
//! the field path, so a ciphertext cannot be moved to another field, event or subject
//! without failing to decrypt.
//!
//! Data keys live in a SQLite key store ([`SubjectKeys`]), in a file of their own, each
//! wrapped (AES-256-GCM) under a key derived from the 32-byte [`MasterKey`]. The master
//! key itself is kept outside both the event store and the key store.
//!
//! # Erasure
//!
//! Erasing a subject ([`Privacy::erase`]) deletes the subject's data key and records when
//! it was erased. The events keep their ciphertexts: their stored bytes do not change, so
//! the integrity hash chain over them still verifies, but the personal values can never be
//! decrypted again, anywhere. Reading such an event gives its pseudonyms and marks it as
//! erased. Events about the same subject that arrive after the erasure get a new key under
//! the same key id; the events sealed before stay unreadable.
//!
//! The key store deletes the wrapped key with SQLite's `secure_delete` and truncates its
//! write-ahead log afterwards, so the key's bytes do not remain in the key store's files.
//! Backups of the key store made before an erasure still hold the wrapped key, and with
//! the master key it can be unwrapped: back up the key store separately from the event
//! store, and keep those backups only for a short time, so that an erasure takes full
//! effect once the last older backup has expired.
//!
//! # Limits
//!
//! AES-GCM with random 96-bit nonces is safe for up to 2^32 encryptions under one key.
//! Keys here are per subject and one event uses one encryption per personal field, so a
//! single subject would need billions of events to come near that bound.
//!
//! # Layout
//!
//! - [`master`]: the master key, its file, and the keys derived from it.
//! - [`pseudonym`]: keyed, equality-preserving pseudonyms.
//! - [`field`]: per-subject data keys and the encryption of one field value.
//! - [`keystore`]: the SQLite store of wrapped subject keys and erasure records.
//! - [`protect`]: personal field configuration; sealing, opening and erasing for events.
//! - `secret`: what the key types share (constant-time comparison, no printing, zeroed
//!   on drop).

pub mod field;
pub mod keystore;
pub mod master;
pub mod protect;
pub mod pseudonym;
mod secret;

pub use field::{DataKey, open_value, seal_value};
pub use keystore::{KeyStatus, SubjectKeys};
pub use master::MasterKey;
pub use protect::{Erasure, PersonalField, Privacy};
pub use pseudonym::Pseudonyms;

/// What went wrong protecting or reading personal data.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The master key could not be read, parsed or created.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The key store could not be opened, read or written, or does not belong to the
    /// master key in use.
    #[error("key store: {0}")]
    KeyStore(String),
    /// A sealed field did not decrypt: it was altered, or moved from another field,
    /// event or subject.
    #[error("could not decrypt {field}: the ciphertext, its key or its event id was altered")]
    Open {
        /// The field's path, e.g. `actor.user_id`.
        field: String,
    },
    /// A personal field is configured, or recorded in a sealed event, in a form that is
    /// not understood.
    #[error("personal field: {0}")]
    Field(String),
    /// A file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The current time in whole seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An I/O error that names the operation and the path it failed on.
pub(crate) fn io_at(what: &str, path: &std::path::Path, e: std::io::Error) -> PrivacyError {
    PrivacyError::Io(std::io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}

//! evident's event store: one storage trait, typed queries, and the SQLite and PostgreSQL backends.
//!
//! # Layout
//!
//! - [`EventStore`] / [`KeyStore`]: what the pipeline and the API need from any backend.
//! - [`query`]: typed filters ([`EventQuery`], [`StatsQuery`]) and their results; backends
//!   turn them into parameterised SQL, never into SQL text built from values.
//! - [`keys`]: roles and hashed API key secrets.
//! - [`findings`]: what detection concluded ([`FindingStore`]), and where the detection
//!   stage stands in the committed stream.
//! - [`sqlite`]: the embedded default (WAL, `synchronous=FULL`, one writer, pooled readers,
//!   background checkpoints, a critical-event journal in a file of its own), with its
//!   migrations under `migrations/sqlite/`.
//! - [`postgres`]: the production backend (monthly partitions per retention class, JSONB
//!   with a GIN index, binary COPY, a pooled connection per operation), with its
//!   migrations under `migrations/postgres/`.
//! - [`retention`]: how long events are kept, enforced by both backends.
//! - `records`: the log's records of changes to the side tables (folds, findings), and
//!   the check of those tables against them.
//! - `terms`, `postings`: the index over events' `data` (terms, and segments of posting
//!   lists), for `data.<path>` filters on both backends.
//! - `integrity`: what both backends' integrity logs share (the verifying thread a walk
//!   feeds, inclusion paths from recorded leaves); [`columns`]: the query columns checked
//!   against the stored bytes.
//! - [`error`]: what a store operation can fail with.
//! - `testsuite` (feature `testsuite`): the conformance suite every backend passes.
//!
//! Contract every backend keeps: [`EventStore::append`] returns only once the batch is
//! durable; each newly stored event gets the next commit sequence number with no gaps;
//! an id already stored is reported as a duplicate and not stored again.

pub mod columns;
mod committed;
pub mod error;
pub mod findings;
mod integrity;
pub mod keys;
pub mod postgres;
mod postings;
pub mod query;
mod records;
pub mod retention;
pub mod sqlite;
mod terms;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use error::StoreError;
pub use findings::{
    DetectionCheckpoint, Finding, FindingCursor, FindingPage, FindingQuery, FindingStatus,
    FindingStore, Hit, StatusChange,
};
pub use keys::{ApiKey, Role};
pub use postgres::PgStore;
pub use query::{
    Cursor, EventQuery, GroupField, Page, Scope, Stats, StatsQuery, StoredEvent, TypeFilter,
};
pub use retention::{RetentionPolicy, RetentionReport, spawn_maintenance};
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use evident_model::EncodedEvent;
use std::sync::Arc;
use uuid::Uuid;

/// Makes the summary event of a deduplication window from the number of folds.
pub type SummaryBuilder = Box<dyn FnOnce(u64) -> EncodedEvent + Send>;

/// An event the store kept refusing, kept for inspection and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Row id in the dead-letter table.
    pub id: i64,
    /// The event's canonical bytes.
    pub bytes: Vec<u8>,
    /// Why the store refused it.
    pub error: String,
    /// When, Unix microseconds.
    pub failed_at: i64,
}

/// What became of one event of an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Newly stored under this commit sequence number.
    Stored(i64),
    /// An event with this id was already stored; nothing was written.
    Duplicate,
}

/// Appending committed events: the pipeline's writer.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Commits `batch` in one durable transaction (fsync before returning) and reports,
    /// in batch order, what became of each event. On error nothing of the batch is stored.
    async fn append(&self, batch: Arc<[EncodedEvent]>) -> Result<Vec<Appended>, StoreError>;

    /// Checks the store can take a write now (without writing anything).
    async fn check_writable(&self) -> Result<(), StoreError>;
}

/// Reading stored events: the query API, the dashboard, exports.
#[async_trait]
pub trait EventReader: Send + Sync + 'static {
    /// The stored event with this id, if it exists and is in `scope`.
    async fn get(&self, id: Uuid, scope: Scope) -> Result<Option<StoredEvent>, StoreError>;

    /// One page of events matching `query`, newest first.
    async fn query(&self, query: EventQuery) -> Result<Page, StoreError>;

    /// Counts per group and per time bucket.
    async fn stats(&self, query: StatsQuery) -> Result<Stats, StoreError>;
}

/// Events the store kept refusing, kept aside to be replayed.
#[async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Durably records `event` as refused by the store with `error`.
    async fn dead_letter(&self, event: &EncodedEvent, error: &str) -> Result<(), StoreError>;

    /// Up to `limit` dead letters, oldest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;

    /// Removes the dead letters with these row ids (after a successful replay).
    async fn remove_dead_letters(&self, ids: Vec<i64>) -> Result<(), StoreError>;
}

/// The critical events' journal: acknowledged without waiting behind bulk commits.
#[async_trait]
pub trait CriticalJournal: Send + Sync + 'static {
    /// Durably records critical events in a journal that never waits behind bulk commits;
    /// they must then be appended as usual, after which
    /// [`CriticalJournal::forget_journaled`] drops them from the journal. Journaled events
    /// are found by [`EventReader::get`] (with seq 0) until then, and moved into the store
    /// at the next start after a crash. Says, in batch order, whether each event is new:
    /// `false` for an id already journaled or stored (a retry), which is kept once.
    async fn journal_critical(&self, batch: Arc<[EncodedEvent]>) -> Result<Vec<bool>, StoreError>;

    /// Drops journaled events that are now stored.
    async fn forget_journaled(&self, ids: Vec<Uuid>) -> Result<(), StoreError>;
}

/// Deduplication's records: repeats folded into a stored event, and their summaries.
#[async_trait]
pub trait FoldLog: Send + Sync + 'static {
    /// Durably records events folded by deduplication: `(folded id, stored id it was
    /// folded into)`. Reports, in order, whether each fold is new (a retried fold is not).
    async fn append_folds(&self, folds: Vec<(Uuid, Uuid)>) -> Result<Vec<bool>, StoreError>;

    /// Closes the deduplication window of `into`: in one transaction, counts its
    /// unsummarized folds, stores the summary event `build(count)` makes, and marks the
    /// folds summarized. Does nothing (returns `None`) when there is no unsummarized fold.
    async fn summarize_folds(
        &self,
        into: Uuid,
        build: SummaryBuilder,
    ) -> Result<Option<(u64, Appended)>, StoreError>;

    /// The stored event a repeat with id `folded` was folded into, if it was.
    async fn fold_target(&self, folded: Uuid) -> Result<Option<Uuid>, StoreError>;

    /// Stored ids that have unsummarized folds (windows left open by a crash).
    async fn open_fold_windows(&self) -> Result<Vec<Uuid>, StoreError>;
}

/// Upkeep: retention, and storage prepared ahead.
#[async_trait]
pub trait Maintenance: Send + Sync + 'static {
    /// Periodic housekeeping as of `now`: removes events past the store's retention
    /// policy (and prepares storage ahead where the backend needs it).
    async fn maintain(&self, now: time::OffsetDateTime) -> Result<RetentionReport, StoreError>;
}

/// The role traits together, for code that calls them on a concrete store:
/// `use evident_store::roles::*;`.
pub mod roles {
    pub use crate::{
        CriticalJournal, DeadLetters, EventLog, EventReader, EventStore, FoldLog, Maintenance,
    };
}

/// Everything an event store is, by role; each consumer takes the role it needs
/// (`Arc<dyn EventReader>` for the query API, the whole store for the pipeline's writer).
/// Implemented for every type that has all the roles.
pub trait EventStore:
    EventLog + EventReader + DeadLetters + CriticalJournal + FoldLog + Maintenance
{
}

impl<T> EventStore for T where
    T: EventLog + EventReader + DeadLetters + CriticalJournal + FoldLog + Maintenance + ?Sized
{
}

/// API key storage.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key with `role` and returns its secret (shown once, never stored).
    /// Admin keys may read personal data in the clear; other keys see pseudonyms.
    async fn create_key(
        &self,
        role: Role,
        facilities: Option<Vec<String>>,
        label: Option<String>,
    ) -> Result<String, StoreError> {
        let personal = role == Role::Admin;
        self.create_key_with(role, facilities, label, personal)
            .await
    }

    /// [`KeyStore::create_key`], saying whether the key may read personal data in the
    /// clear (admin keys always may).
    async fn create_key_with(
        &self,
        role: Role,
        facilities: Option<Vec<String>>,
        label: Option<String>,
        personal: bool,
    ) -> Result<String, StoreError>;

    /// The live key whose secret is `secret`.
    async fn find_key(&self, secret: &str) -> Result<Option<ApiKey>, StoreError>;

    /// How many live keys exist.
    async fn count_keys(&self) -> Result<u64, StoreError>;
}

/// What a walk of a store's integrity log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerification {
    /// Sequence number of the log's first event.
    pub start_seq: i64,
    /// Sizes of the signed checkpoints, smallest first.
    pub checkpoint_sizes: Vec<u64>,
    /// What verified, and the first problem.
    pub report: evident_integrity::verify::Report,
    /// The id of the event the problem names (altered, or inserted where another
    /// belongs), when its row is there to read it from.
    pub problem_event: Option<uuid::Uuid>,
    /// Differences between the side tables (folds, findings' evidence and statuses)
    /// and the records of their changes in the log, each named.
    pub beside: Vec<String>,
}

impl LogVerification {
    /// The sequence number of the stored row the problem names, if it names one.
    pub fn problem_seq(&self) -> Option<i64> {
        use evident_integrity::verify::Problem;
        match self.report.problem {
            Some(Problem::Altered { seq } | Problem::OutOfOrder { seq, .. }) => Some(seq),
            _ => None,
        }
    }
}

/// A store whose committed events form a signed, verifiable log.
pub trait IntegrityLog: Send + Sync + 'static {
    /// Walks the log against its signed checkpoints with the public key `public`, and
    /// against `witness` (size and head an earlier walk verified) if given, calling
    /// `progress(done, total)` now and then. Blocking: run it off async workers.
    fn verify_log(
        &self,
        public: &[u8; 32],
        witness: Option<(u64, evident_integrity::Hash)>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<LogVerification, StoreError>;

    /// An inclusion proof for the event `id` against the newest signed checkpoint, or why
    /// there is none; `None` when no such event is stored. Blocking: run it off async
    /// workers.
    fn prove(&self, id: uuid::Uuid) -> Result<Option<Proved>, StoreError>;
}

/// Signing checkpoints of the integrity log: the service's checkpoint task.
#[async_trait]
pub trait CheckpointSigner: Send + Sync + 'static {
    /// Signs the integrity log's head with `signer` and stores the checkpoint, unless
    /// nothing was committed since the last one (then `None`).
    async fn sign_checkpoint(
        &self,
        signer: Arc<evident_integrity::Signer>,
        origin: String,
    ) -> Result<Option<evident_integrity::Signed>, StoreError>;
}

/// A store's integrity log: walked and proved ([`IntegrityLog`]) and signed
/// ([`CheckpointSigner`]). Implemented for every type that is both.
pub trait SignedLog: IntegrityLog + CheckpointSigner {}

impl<T: IntegrityLog + CheckpointSigner + ?Sized> SignedLog for T {}

/// What [`IntegrityLog::prove`] found for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proved {
    /// The proof, checkable with the public key alone.
    Proof(Box<evident_integrity::EventProof>),
    /// The event (at this sequence number) came after the newest signed checkpoint; the
    /// next checkpoint will cover it.
    NotYetSigned(i64),
    /// The event (at this sequence number) was stored before the log began.
    OutsideLog(i64),
}

/// Whether a journaled event's facility is within `scope`.
pub(crate) fn in_scope(bytes: &[u8], scope: &Scope) -> bool {
    let Some(facilities) = scope else { return true };
    let facility = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["facility"].as_str().map(str::to_owned));
    facility.is_some_and(|f| facilities.contains(&f))
}

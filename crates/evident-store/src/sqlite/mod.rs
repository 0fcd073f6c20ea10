//! The embedded SQLite backend: one database file in the data directory.
//!
//! One writer connection (behind a mutex, used from blocking tasks) commits batches; a
//! small pool of read-only connections serves queries concurrently thanks to WAL.
//! A lock file keeps a second server off the same directory.

mod checkpoint;
mod findings;
mod indexer;
mod integrity;
mod journal;
mod keys;
mod private;
mod read;
mod retention;
mod schema;
mod term_search;
mod term_segments;
mod write;

use crate::error::StoreError;
use crate::findings::{
    DetectionCheckpoint, Finding, FindingPage, FindingQuery, FindingStore, Hit, StatusChange,
};
use crate::query::{EventQuery, Page, Scope, Stats, StatsQuery, StoredEvent};
use crate::retention::{RetentionPolicy, RetentionReport};
use crate::{
    Appended, CriticalJournal, DeadLetter, DeadLetters, EventLog, EventReader, FoldLog,
    Maintenance, SummaryBuilder,
};
use async_trait::async_trait;
use evident_model::{EncodedEvent, unix_micros};
use evident_stream::{CommittedEvent, CommittedLog, LogError};
use rusqlite::Connection;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;
use write::{Writer, WriterLock};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "evident.db";
/// File name of the lock that keeps two servers off one directory.
pub const LOCK_FILE: &str = "evident.lock";
/// Read connections kept open between queries.
const MAX_IDLE_READERS: usize = 8;

/// The embedded store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The data-term indexer; first, so that dropping the store stops it while the
    /// writer it writes through is still there.
    indexer: indexer::Indexer,
    path: PathBuf,
    writer: Arc<WriterLock>,
    /// How long events are kept (the default policy unless set).
    retention: Mutex<RetentionPolicy>,
    readers: Mutex<Vec<Connection>>,
    /// The critical-event journal (its own file and connection).
    journal: Mutex<journal::Journal>,
    /// Journal writes waiting for the next journal transaction.
    #[allow(clippy::type_complexity)]
    journal_waiting: Mutex<
        Vec<(
            Arc<[EncodedEvent]>,
            tokio::sync::oneshot::Sender<Result<Vec<bool>, String>>,
        )>,
    >,
    /// Runs WAL checkpoints off the commit path while the store serves.
    _checkpointer: Option<checkpoint::Checkpointer>,
    /// Held for the store's lifetime when it serves; `None` for tools sharing the directory.
    _lock: Option<File>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` for serving: takes the
    /// directory's lock so no second server can write to it.
    pub fn open_exclusive(data_dir: &Path) -> Result<Self, StoreError> {
        let lock = lock_dir(data_dir)?;
        Self::open_inner(data_dir, Some(lock))
    }

    /// Opens the store in `data_dir` without the server lock, for tools (key management)
    /// that may run beside a serving process; SQLite's own locking keeps writes safe.
    pub fn open_shared(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_inner(data_dir, None)
    }

    fn open_inner(data_dir: &Path, lock: Option<File>) -> Result<Self, StoreError> {
        ensure_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let private = |path: &Path| {
            private::prepare_database(path).map_err(|e| StoreError::DataDir {
                path: path.display().to_string(),
                reason: format!("cannot make the database private: {e}"),
            })
        };
        private(&path)?;
        private(&data_dir.join(journal::JOURNAL_FILE))?;
        let serving = lock.is_some();
        let (feed, indexer) = indexer::Indexer::channel();
        let mut writer = Writer::new(schema::open_writer(&path, serving)?, feed)?;
        let mut journal = journal::Journal::open(data_dir)?;
        if serving {
            recover_journal(&mut writer, &mut journal)?;
            writer.record_baseline()?;
        }
        let checkpointer = if serving {
            Some(checkpoint::Checkpointer::start(path.clone())?)
        } else {
            None
        };
        let writer = Arc::new(WriterLock::new(writer));
        let indexer = indexer.start(&path, Arc::downgrade(&writer))?;
        Ok(Self {
            inner: Arc::new(Inner {
                indexer,
                path,
                writer,
                retention: Mutex::new(RetentionPolicy::default()),
                journal: Mutex::new(journal),
                journal_waiting: Mutex::new(Vec::new()),
                readers: Mutex::new(Vec::new()),
                _checkpointer: checkpointer,
                _lock: lock,
            }),
        })
    }

    /// Caps the database file at about `bytes` (SQLite's `max_page_count`): past it,
    /// commits fail as [`StoreError::Full`], as on a full disk. For quotas and tests.
    pub fn limit_size(&self, bytes: u64) -> Result<(), StoreError> {
        let mut writer = self.inner.writer.lock();
        let conn = writer.conn();
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = (bytes as i64 / page_size.max(1)).max(1);
        conn.pragma_update_and_check(None, "max_page_count", pages, |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    /// Keeps events as long as `policy` says (the default policy until this is called).
    pub fn set_retention(&self, policy: RetentionPolicy) {
        *self
            .inner
            .retention
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// Waits until the data-term indexer has taken everything committed so far (its
    /// segments written, or the rest buffered), for tests and tools that read the
    /// segments themselves.
    pub fn settle_term_index(&self) {
        self.inner.indexer.settle();
    }

    /// Path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with the writer on a blocking thread.
    async fn with_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = inner.writer.lock();
            f(&mut writer)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` with a pooled read connection on a blocking thread.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => schema::open_reader(&inner.path)?,
            };
            let result = f(&conn);
            let mut idle = inner.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Moves events a crash left in the critical journal into the main database.
fn recover_journal(writer: &mut Writer, journal: &mut journal::Journal) -> Result<(), StoreError> {
    let pending = journal.all()?;
    if pending.is_empty() {
        return Ok(());
    }
    let mut events = Vec::with_capacity(pending.len());
    for bytes in pending {
        let event: evident_model::Event = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Database(format!("critical journal entry: {e}")))?;
        events.push(EncodedEvent { event, bytes });
    }
    events.sort_by_key(|e| e.event.received_at);
    let ids: Vec<Uuid> = events.iter().map(|e| e.event.id).collect();
    writer.append(&events.into())?;
    journal.remove(&ids)?;
    tracing::info!(
        events = ids.len(),
        "moved critical events from the journal into the store"
    );
    Ok(())
}

fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    private::create_dir(dir).map_err(|e| StoreError::DataDir {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    ensure_dir(dir)?;
    let err = |reason: String| StoreError::DataDir {
        path: dir.display().to_string(),
        reason,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(private::FILE_MODE)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| err(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(err("another evident server is using it".into()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(err(format!("cannot lock: {e}"))),
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, batch: Arc<[EncodedEvent]>) -> Result<Vec<Appended>, StoreError> {
        self.with_writer(move |w| w.append(&batch)).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.with_writer(Writer::check_writable).await
    }
}

#[async_trait]
impl EventReader for SqliteStore {
    async fn get(&self, id: uuid::Uuid, scope: Scope) -> Result<Option<StoredEvent>, StoreError> {
        let inner = self.inner.clone();
        self.with_reader(move |c| {
            // The journal first: an event leaves it only once it is in the store, so
            // looking there second could miss one moving between the two looks.
            let journaled = inner
                .journal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(id)?;
            match read::get(c, id, &scope)? {
                Some(found) => Ok(Some(found)),
                // Acknowledged from the critical journal, not yet moved: seq 0 until it is.
                None => Ok(journaled
                    .filter(|bytes| crate::in_scope(bytes, &scope))
                    .map(|bytes| StoredEvent { seq: 0, bytes })),
            }
        })
        .await
    }

    async fn query(&self, query: EventQuery) -> Result<Page, StoreError> {
        self.with_reader(move |c| read::query(c, &query)).await
    }

    async fn stats(&self, query: StatsQuery) -> Result<Stats, StoreError> {
        self.with_reader(move |c| read::stats(c, &query)).await
    }
}

#[async_trait]
impl DeadLetters for SqliteStore {
    async fn dead_letter(&self, event: &EncodedEvent, error: &str) -> Result<(), StoreError> {
        let (id, body, error) = (event.event.id, event.bytes.clone(), error.to_owned());
        self.with_writer(move |w| w.dead_letter(id, &body, &error))
            .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.with_reader(move |c| read::dead_letters(c, limit))
            .await
    }

    async fn remove_dead_letters(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.with_writer(move |w| w.remove_dead_letters(&ids)).await
    }
}

#[async_trait]
impl CriticalJournal for SqliteStore {
    async fn journal_critical(&self, batch: Arc<[EncodedEvent]>) -> Result<Vec<bool>, StoreError> {
        // Group commit: every caller queues its batch; whichever takes the journal lock
        // next writes everything queued by then in one transaction (one fsync) and answers
        // each caller. Callers that find the queue already taken just return.
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner
            .journal_waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((batch.clone(), reply));
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut journal = inner.journal.lock().unwrap_or_else(PoisonError::into_inner);
            let work = std::mem::take(
                &mut *inner
                    .journal_waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if work.is_empty() {
                return;
            }
            let result = journal.append(work.iter().flat_map(|(batch, _)| batch.iter()));
            let mut offset = 0;
            for (batch, reply) in work {
                let mine = result
                    .as_ref()
                    .map(|new| new[offset..offset + batch.len()].to_vec())
                    .map_err(ToString::to_string);
                offset += batch.len();
                // A caller that went away no longer needs its answer.
                reply.send(mine).ok();
            }
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?;
        let mut new = answer
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(StoreError::Database)?;
        // New to the journal may still be stored already: an event leaves the journal
        // only after it is in the store, so one of the two looks finds a repeat.
        let ids: Vec<Uuid> = batch
            .iter()
            .zip(&new)
            .filter(|(_, new)| **new)
            .map(|(e, _)| e.event.id)
            .collect();
        if !ids.is_empty() {
            let stored = self.with_reader(move |c| read::stored_ids(c, &ids)).await?;
            for (e, new) in batch.iter().zip(new.iter_mut()) {
                *new &= !stored.contains(&e.event.id);
            }
        }
        Ok(new)
    }

    async fn forget_journaled(&self, ids: Vec<Uuid>) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .journal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&ids)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[async_trait]
impl FoldLog for SqliteStore {
    async fn append_folds(&self, folds: Vec<(Uuid, Uuid)>) -> Result<Vec<bool>, StoreError> {
        self.with_writer(move |w| w.append_folds(&folds)).await
    }

    async fn summarize_folds(
        &self,
        into: Uuid,
        build: SummaryBuilder,
    ) -> Result<Option<(u64, Appended)>, StoreError> {
        self.with_writer(move |w| w.summarize_folds(into, build))
            .await
    }

    async fn fold_target(&self, folded: Uuid) -> Result<Option<Uuid>, StoreError> {
        self.with_reader(move |c| read::fold_target(c, folded))
            .await
    }

    async fn open_fold_windows(&self) -> Result<Vec<Uuid>, StoreError> {
        self.with_reader(read::open_fold_windows).await
    }
}

#[async_trait]
impl Maintenance for SqliteStore {
    async fn maintain(&self, now: time::OffsetDateTime) -> Result<RetentionReport, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let policy = inner
                .retention
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let removed = retention::enforce(&inner.writer, &policy, unix_micros(now))?;
            if removed > 0 {
                let mut writer = inner.writer.lock();
                term_segments::prune(writer.conn())?;
            }
            // Also after a run that removed nothing: the checkpoint a removed run waits
            // for may have been signed since.
            retention::fold_log_start(&inner.writer)?;
            Ok(RetentionReport {
                removed,
                dropped_partitions: Vec::new(),
            })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[async_trait]
impl CommittedLog for SqliteStore {
    async fn committed_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<CommittedEvent>, LogError> {
        let stored = self
            .with_reader(move |c| findings::committed_after(c, seq, limit))
            .await
            .map_err(|e| crate::committed::log_error(seq, &e))?;
        Ok(crate::committed::decode(stored))
    }

    async fn last_seq(&self) -> Result<i64, LogError> {
        self.with_reader(findings::last_seq)
            .await
            .map_err(|e| crate::committed::log_error(0, &e))
    }
}

#[async_trait]
impl FindingStore for SqliteStore {
    async fn detection_checkpoint(&self) -> Result<DetectionCheckpoint, StoreError> {
        self.with_reader(findings::checkpoint).await
    }

    async fn record_hits(&self, hits: Vec<Hit>, done_seq: i64) -> Result<Vec<Uuid>, StoreError> {
        self.with_writer(move |w| w.record_hits(&hits, done_seq))
            .await
    }

    async fn save_detection_state(&self, seq: i64, state: Vec<u8>) -> Result<(), StoreError> {
        self.with_writer(move |w| findings::save_state(w.conn(), seq, &state))
            .await
    }

    async fn finding(&self, id: Uuid, scope: Scope) -> Result<Option<Finding>, StoreError> {
        self.with_reader(move |c| findings::get(c, id, &scope))
            .await
    }

    async fn findings(&self, query: FindingQuery) -> Result<FindingPage, StoreError> {
        self.with_reader(move |c| findings::query(c, &query)).await
    }

    async fn set_finding_status(
        &self,
        id: Uuid,
        change: StatusChange,
        scope: Scope,
    ) -> Result<Option<Finding>, StoreError> {
        self.with_writer(move |w| w.set_finding_status(id, &change, &scope))
            .await
    }

    async fn findings_for_event(
        &self,
        event: Uuid,
        scope: Scope,
    ) -> Result<Vec<Finding>, StoreError> {
        self.with_reader(move |c| findings::for_event(c, event, &scope))
            .await
    }
}

#[cfg(test)]
mod tamper_tests;
#[cfg(test)]
mod tests;

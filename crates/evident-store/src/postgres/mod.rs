//! The PostgreSQL backend: for plants that keep years of events.
//!
//! A small connection pool serves everything; one append runs as one transaction (event
//! ids first, then the new events by binary COPY into monthly partitions per retention
//! class). A background job creates next months' partitions ahead of time and enforces
//! retention by dropping or trimming whole partitions, keeping the integrity log
//! verifiable. Critical events are journaled in a table of their own, committed without
//! waiting behind a bulk append.

mod findings;
mod integrity;
mod keys;
mod partitions;
mod read;
mod schema;
mod term_search;
mod term_segments;
mod write;

#[cfg(test)]
mod tests;

use crate::error::StoreError;
use crate::findings::{
    DetectionCheckpoint, Finding, FindingPage, FindingQuery, FindingStore, Hit, StatusChange,
};
use crate::postings;
use crate::query::{EventQuery, Page, Scope, Stats, StatsQuery, StoredEvent};
use crate::retention::{RetentionPolicy, RetentionReport};
use crate::{
    Appended, CriticalJournal, DeadLetter, DeadLetters, EventLog, EventReader, FoldLog,
    Maintenance, SummaryBuilder,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use evident_model::{EncodedEvent, unix_micros};
use evident_stream::{CommittedEvent, CommittedLog, LogError};
use partitions::{PartitionKey, Partitions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio_postgres::NoTls;
use uuid::Uuid;

/// Connections kept in the pool.
const POOL_SIZE: usize = 16;
/// How long a caller waits for a connection (or for PostgreSQL to accept one) before the
/// operation fails: a store that is down must not hang requests.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Months of partitions created ahead of the current one.
const MONTHS_AHEAD: usize = 2;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    partitions: Partitions,
    policy: RetentionPolicy,
    /// Whether a data-term segment builder runs in this process.
    indexing: AtomicBool,
    /// The highest sequence number the segments covered when last looked.
    indexed: AtomicI64,
    /// The runtime the store was opened on: its tasks drive the pooled connections.
    runtime: tokio::runtime::Handle,
}

impl PgStore {
    /// Appends one record of the service's own inside the transaction open on `tx`
    /// (the log's record of a change to a side table, made in the same transaction).
    async fn log_record(
        &self,
        tx: &(impl tokio_postgres::GenericClient + Sync),
        record: EncodedEvent,
    ) -> Result<(), StoreError> {
        let days = i32::try_from(self.inner.policy.days_for(&record.event)).unwrap_or(i32::MAX);
        self.inner
            .partitions
            .ensure(tx, [PartitionKey::of(days, record.event.time)])
            .await?;
        write::insert(tx, std::slice::from_ref(&record), &[days]).await?;
        Ok(())
    }

    /// Brings rows the side tables held before records were kept under the log, once:
    /// at the first start after the upgrade (see `records::baseline`).
    async fn record_baseline(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Servers sharing the database take turns; the first makes the baseline.
        let pending: bool = tx
            .query_one(
                "SELECT baseline_pending FROM side_records WHERE one = 1 FOR UPDATE",
                &[],
            )
            .await?
            .get(0);
        if !pending {
            return Ok(());
        }
        let rows = integrity::side_rows(&*tx).await?;
        for record in crate::records::baseline(&rows) {
            self.log_record(&*tx, record).await?;
        }
        tx.execute("UPDATE side_records SET baseline_pending = false", &[])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Connects to `url` (`postgres://user@host:port/db`), checks that commits are
    /// durable, applies migrations, moves events a crash left in the critical journal
    /// into the store, and creates partitions for this month and the next ones.
    pub async fn connect(url: &str, policy: RetentionPolicy) -> Result<Self, StoreError> {
        let store = Self::connect_shared(url, policy).await?;
        store.create_partitions_ahead().await?;
        store.recover_journal().await?;
        store.record_baseline().await?;
        // Events stored since the last segment (all of them, after the upgrade that
        // brought segments) are indexed in the background; data filters meanwhile scan them.
        store.spawn_segment_builder();
        Ok(store)
    }

    /// Connects to `url`, checks that commits are durable and applies migrations, for
    /// tools that read the store beside a serving process (`evident verify`): the
    /// critical journal, partitions ahead and the data index are left to the service.
    pub async fn connect_shared(url: &str, policy: RetentionPolicy) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Database(format!("database URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(format!("connection pool: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                partitions: Partitions::default(),
                policy,
                indexing: AtomicBool::new(false),
                indexed: AtomicI64::new(0),
                runtime: tokio::runtime::Handle::current(),
            }),
        };
        let mut client = store.client().await?;
        schema::check_durable(&client).await?;
        schema::migrate(&mut client).await?;
        drop(client);
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Database(format!("PostgreSQL connection: {e}")))
    }

    /// Creates this month's and the next months' partitions of every retention class.
    pub async fn create_partitions_ahead(&self) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc();
        let mut keys = Vec::new();
        for days in self.inner.policy.classes() {
            let mut key = PartitionKey::of(i32::try_from(days).unwrap_or(i32::MAX), now);
            for _ in 0..=MONTHS_AHEAD {
                keys.push(key);
                key = key.next();
            }
        }
        let client = self.client().await?;
        self.inner.partitions.ensure(&**client, keys).await
    }

    /// Drops partitions past their retention and trims the one each class's cutoff falls
    /// in, as of `now`. The integrity log keeps the leaf hashes of the removed events.
    pub async fn enforce_retention(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<RetentionReport, StoreError> {
        let mut client = self.client().await?;
        partitions::enforce(&mut client, &self.inner.partitions, now).await
    }

    /// Writes data-term segments for every full run of events not yet indexed (waiting
    /// for another builder to finish first); returns how many segments it wrote. Runs by
    /// itself after appends; tools call it to have the index complete now (after a bulk
    /// load, say).
    pub async fn build_term_segments(&self) -> Result<u64, StoreError> {
        let mut built = 0u64;
        loop {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let step = term_segments::build_next(&tx).await?;
            tx.commit().await?;
            match step {
                term_segments::Built::Segment(indexed) => {
                    self.inner.indexed.store(indexed, Ordering::Relaxed);
                    built += 1;
                    if built.is_multiple_of(64) {
                        tracing::info!(up_to_seq = indexed, "indexing the data of stored events");
                    }
                }
                term_segments::Built::Waiting(indexed) => {
                    self.inner.indexed.store(indexed, Ordering::Relaxed);
                    return Ok(built);
                }
                // Another builder is at work: wait for it, then carry on.
                term_segments::Built::Busy => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Starts [`Self::build_term_segments`] in the background unless it runs already.
    fn spawn_segment_builder(&self) {
        if self.inner.indexing.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.build_term_segments().await {
                tracing::warn!(error = %e, "could not write a data-term segment; will retry");
            }
            store.inner.indexing.store(false, Ordering::Release);
        });
    }

    async fn recover_journal(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT body FROM critical_journal", &[])
            .await?;
        drop(client);
        if rows.is_empty() {
            return Ok(());
        }
        let mut events = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let body: String = row.get(0);
            let event: evident_model::Event = serde_json::from_str(&body)
                .map_err(|e| StoreError::Database(format!("critical journal entry: {e}")))?;
            ids.push(event.id);
            events.push(EncodedEvent {
                event,
                bytes: body.into_bytes(),
            });
        }
        let n = events.len();
        self.append(events.into()).await?;
        self.forget_journaled(ids).await?;
        tracing::info!(
            events = n,
            "moved critical events from the journal into the store"
        );
        Ok(())
    }
}

#[async_trait]
impl EventLog for PgStore {
    async fn append(&self, batch: Arc<[EncodedEvent]>) -> Result<Vec<Appended>, StoreError> {
        let mut client = self.client().await?;
        let outcomes = write::append(
            &mut client,
            &self.inner.partitions,
            &self.inner.policy,
            &batch,
        )
        .await?;
        let newest = outcomes.iter().rev().find_map(|a| match a {
            Appended::Stored(seq) => Some(*seq),
            Appended::Duplicate => None,
        });
        if newest.is_some_and(|seq| {
            seq - self.inner.indexed.load(Ordering::Relaxed) >= postings::SEGMENT_EVENTS as i64
        }) {
            self.spawn_segment_builder();
        }
        Ok(outcomes)
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Fails on a read-only server or transaction; does not wait for the writer.
        tx.query("SELECT 1 FROM commit_seq FOR UPDATE SKIP LOCKED", &[])
            .await?;
        tx.rollback().await?;
        Ok(())
    }
}

#[async_trait]
impl EventReader for PgStore {
    async fn get(&self, id: Uuid, scope: Scope) -> Result<Option<StoredEvent>, StoreError> {
        let client = self.client().await?;
        // The journal first: an event leaves it only once it is in the store, so looking
        // there second could miss one moving between the two looks.
        let journaled = client
            .query_opt("SELECT body FROM critical_journal WHERE id = $1", &[&id])
            .await?;
        if let Some(found) = read::get(&client, id, &scope).await? {
            return Ok(Some(found));
        }
        // Acknowledged from the critical journal, not yet moved: seq 0 until it is.
        Ok(journaled
            .map(|r| r.get::<_, String>(0).into_bytes())
            .filter(|bytes| crate::in_scope(bytes, &scope))
            .map(|bytes| StoredEvent { seq: 0, bytes }))
    }

    async fn query(&self, query: EventQuery) -> Result<Page, StoreError> {
        let mut client = self.client().await?;
        read::query(&mut client, &query).await
    }

    async fn stats(&self, query: StatsQuery) -> Result<Stats, StoreError> {
        let client = self.client().await?;
        read::stats(&client, &query).await
    }
}

#[async_trait]
impl DeadLetters for PgStore {
    async fn dead_letter(&self, event: &EncodedEvent, error: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let body = String::from_utf8_lossy(&event.bytes).replace('\0', "\u{fffd}");
        let now = unix_micros(time::OffsetDateTime::now_utc());
        client
            .execute(
                "INSERT INTO dead_letters (event_id, body, error, failed_at) VALUES ($1, $2, $3, $4)",
                &[&event.event.id, &body, &error.replace('\0', "\u{fffd}"), &now],
            )
            .await?;
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, body, error, failed_at FROM dead_letters ORDER BY id LIMIT $1",
                &[&(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                id: r.get(0),
                bytes: r.get::<_, String>(1).into_bytes(),
                error: r.get(2),
                failed_at: r.get(3),
            })
            .collect())
    }

    async fn remove_dead_letters(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM dead_letters WHERE id = ANY($1)", &[&ids])
            .await?;
        Ok(())
    }
}

#[async_trait]
impl CriticalJournal for PgStore {
    async fn journal_critical(&self, batch: Arc<[EncodedEvent]>) -> Result<Vec<bool>, StoreError> {
        let client = self.client().await?;
        let ids: Vec<Uuid> = batch.iter().map(|e| e.event.id).collect();
        let bodies = batch
            .iter()
            .map(|e| {
                String::from_utf8(e.bytes.clone())
                    .map_err(|err| StoreError::Rejected(format!("event body is not UTF-8: {err}")))
            })
            .collect::<Result<Vec<String>, _>>()?;
        let journaled: std::collections::HashSet<Uuid> = client
            .query(
                "INSERT INTO critical_journal (id, body) SELECT * FROM unnest($1::uuid[], $2::text[])
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[&ids, &bodies],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // New to the journal may still be stored already: an event leaves the journal
        // only after it is in the store, so one of the two looks (this one in a later
        // snapshot) finds a repeat.
        let fresh: Vec<Uuid> = journaled.iter().copied().collect();
        let stored: std::collections::HashSet<Uuid> = if fresh.is_empty() {
            Default::default()
        } else {
            client
                .query("SELECT id FROM event_ids WHERE id = ANY($1)", &[&fresh])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        Ok(ids
            .iter()
            .map(|id| journaled.contains(id) && !stored.contains(id))
            .collect())
    }

    async fn forget_journaled(&self, ids: Vec<Uuid>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // No need to wait for the flush: a removal lost in a crash only means recovery
        // moves the event again, and the store ignores an id it already holds.
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        tx.execute("DELETE FROM critical_journal WHERE id = ANY($1)", &[&ids])
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl FoldLog for PgStore {
    async fn append_folds(&self, folds: Vec<(Uuid, Uuid)>) -> Result<Vec<bool>, StoreError> {
        let mut client = self.client().await?;
        let client = client.transaction().await?;
        let (ids, intos): (Vec<Uuid>, Vec<Uuid>) = folds.iter().copied().unzip();
        let now = unix_micros(time::OffsetDateTime::now_utc());
        let new: std::collections::HashSet<Uuid> = client
            .query(
                "INSERT INTO folds (id, into_id, folded_at)
                 SELECT f.id, f.into_id, $3 FROM unnest($1::uuid[], $2::uuid[]) AS f(id, into_id)
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[&ids, &intos, &now],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<bool> = ids
            .iter()
            .map(|id| new.contains(id) && seen.insert(*id))
            .collect();
        if let Some(folded) = crate::records::new_folds(&folds, &fresh) {
            self.log_record(&*client, folded).await?;
        }
        client.commit().await?;
        Ok(fresh)
    }

    async fn summarize_folds(
        &self,
        into: Uuid,
        build: SummaryBuilder,
    ) -> Result<Option<(u64, Appended)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Locks the window's folds, so two closers cannot both summarize them.
        let rows = tx
            .query(
                "SELECT id FROM folds WHERE into_id = $1 AND NOT summarized FOR UPDATE",
                &[&into],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let count = rows.len() as u64;
        let summary = build(count);
        let days = i32::try_from(self.inner.policy.days_for(&summary.event)).unwrap_or(i32::MAX);
        self.inner
            .partitions
            .ensure(&*tx, [PartitionKey::of(days, summary.event.time)])
            .await?;
        let appended = write::insert(&*tx, std::slice::from_ref(&summary), &[days]).await?;
        tx.execute(
            "UPDATE folds SET summarized = true WHERE into_id = $1 AND NOT summarized",
            &[&into],
        )
        .await?;
        tx.commit().await?;
        Ok(appended.first().map(|a| (count, *a)))
    }

    async fn fold_target(&self, folded: Uuid) -> Result<Option<Uuid>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT into_id FROM folds WHERE id = $1", &[&folded])
            .await?
            .map(|r| r.get(0)))
    }

    async fn open_fold_windows(&self) -> Result<Vec<Uuid>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT DISTINCT into_id FROM folds WHERE NOT summarized",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}

#[async_trait]
impl Maintenance for PgStore {
    async fn maintain(&self, now: time::OffsetDateTime) -> Result<RetentionReport, StoreError> {
        self.create_partitions_ahead().await?;
        let report = self.enforce_retention(now).await?;
        if report.removed > 0 {
            term_segments::prune(&**self.client().await?).await?;
        }
        // Also after a pass that removed nothing: the checkpoint a removed run waits for
        // may have been signed since.
        let mut client = self.client().await?;
        integrity::fold_log_start(&mut client).await?;
        Ok(report)
    }
}

#[async_trait]
impl CommittedLog for PgStore {
    async fn committed_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<CommittedEvent>, LogError> {
        let read = async {
            let client = self.client().await?;
            findings::committed_after(&client, seq, limit).await
        };
        let stored = read
            .await
            .map_err(|e| crate::committed::log_error(seq, &e))?;
        Ok(crate::committed::decode(stored))
    }

    async fn last_seq(&self) -> Result<i64, LogError> {
        let read = async {
            let client = self.client().await?;
            findings::last_seq(&client).await
        };
        read.await.map_err(|e| crate::committed::log_error(0, &e))
    }
}

#[async_trait]
impl FindingStore for PgStore {
    async fn detection_checkpoint(&self) -> Result<DetectionCheckpoint, StoreError> {
        let client = self.client().await?;
        findings::checkpoint(&client).await
    }

    async fn record_hits(&self, hits: Vec<Hit>, done_seq: i64) -> Result<Vec<Uuid>, StoreError> {
        let client = self.client().await?;
        let log = |linked: Vec<crate::records::Linked>| {
            self.log_record(&**client, crate::records::evidence(&linked))
        };
        match findings::record_hits(&client, &hits, done_seq, log).await {
            Ok(touched) => Ok(touched),
            Err(error) => {
                // A connection that cannot even roll back is not returned to the pool.
                if client.batch_execute("ROLLBACK").await.is_err() {
                    drop(deadpool_postgres::Object::take(client));
                }
                Err(error)
            }
        }
    }

    async fn save_detection_state(&self, seq: i64, state: Vec<u8>) -> Result<(), StoreError> {
        let client = self.client().await?;
        findings::save_state(&client, seq, &state).await
    }

    async fn finding(&self, id: Uuid, scope: Scope) -> Result<Option<Finding>, StoreError> {
        let client = self.client().await?;
        findings::get(&client, id, &scope).await
    }

    async fn findings(&self, query: FindingQuery) -> Result<FindingPage, StoreError> {
        let client = self.client().await?;
        findings::query(&client, &query).await
    }

    async fn set_finding_status(
        &self,
        id: Uuid,
        change: StatusChange,
        scope: Scope,
    ) -> Result<Option<Finding>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let found = findings::set_status(&*tx, id, &change, &scope).await?;
        if found.is_some() {
            let record = crate::records::status(id, change.status.as_str(), &change.by);
            self.log_record(&*tx, record).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn findings_for_event(
        &self,
        event: Uuid,
        scope: Scope,
    ) -> Result<Vec<Finding>, StoreError> {
        let client = self.client().await?;
        findings::for_event(&client, event, &scope).await
    }
}

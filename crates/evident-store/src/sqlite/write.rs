//! The single writer: appends batches in one transaction, assigning gap-free sequence numbers.

use super::indexer::Feed;
use crate::Appended;
use crate::error::StoreError;
use evident_integrity::{Frontier, merkle::leaf_hash};
use evident_model::{EncodedEvent, unix_micros};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;

const INSERT: &str =
    "INSERT INTO events (seq, id, time, received_at, type, category, severity, priority, outcome,
        source, agent_id, user_id, source_ip, facility, correlation_id, body, leaf)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
     ON CONFLICT (id) DO NOTHING";

/// Where the next commit goes: its first sequence number, and the integrity log's
/// frontier it extends.
pub(crate) struct Next {
    pub(crate) seq: i64,
    pub(crate) log: Frontier,
}

/// The lock around the writer: fair, so that when a commit ends, a follower waiting
/// for the connection (the term indexer's segment, detection's findings) gets it before
/// the writer takes it again for the next commit; an unfair lock let the writer win
/// over and over while its followers fell further behind.
pub(crate) type WriterLock = parking_lot::FairMutex<Writer>;

/// The writer connection, the next sequence number to hand out, and the feed of the
/// data-term indexer that follows what it stores.
pub(crate) struct Writer {
    conn: Connection,
    next: Next,
    terms: Feed,
}

impl Writer {
    pub(crate) fn new(conn: Connection, terms: Feed) -> Result<Self, StoreError> {
        let seq = next_seq(&conn)?;
        let log = load_log(&conn, seq)?;
        Ok(Self {
            conn,
            next: Next { seq, log },
            terms,
        })
    }

    /// The integrity log's frontier after the last commit.
    pub(crate) fn log(&self) -> &Frontier {
        &self.next.log
    }

    /// Appends `batch` in one transaction; with WAL and `synchronous=FULL` the commit is
    /// on disk when this returns.
    pub(crate) fn append(
        &mut self,
        batch: &Arc<[EncodedEvent]>,
    ) -> Result<Vec<Appended>, StoreError> {
        let outcomes = self.in_transaction(|tx, next| insert_events(tx, batch, next))?;
        self.index(batch.clone(), &outcomes);
        Ok(outcomes)
    }

    /// Hands the newly stored events of a committed batch to the data-term indexer.
    fn index(&mut self, batch: Arc<[EncodedEvent]>, outcomes: &[Appended]) {
        let seqs = outcomes
            .iter()
            .map(|o| match o {
                Appended::Stored(seq) => *seq,
                Appended::Duplicate => 0,
            })
            .collect();
        self.terms.committed(batch, seqs);
    }

    /// Runs `f` in one IMMEDIATE transaction, handing it the next sequence number and
    /// the log to extend; on error the transaction rolls back and both are as before.
    fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &mut Next) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut next = Next {
            seq: self.next.seq,
            log: self.next.log.clone(),
        };
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx, &mut next)?;
            tx.commit()?;
            Ok(out)
        })();
        match result {
            Ok(out) => {
                self.next = next;
                Ok(out)
            }
            Err(e) => {
                let seq = next_seq(&self.conn)?;
                self.next = Next {
                    log: load_log(&self.conn, seq)?,
                    seq,
                };
                Err(e)
            }
        }
    }

    /// Records folds; reports whether each is new.
    pub(crate) fn append_folds(
        &mut self,
        folds: &[(uuid::Uuid, uuid::Uuid)],
    ) -> Result<Vec<bool>, StoreError> {
        let now = unix_micros(time::OffsetDateTime::now_utc());
        let mut record = None;
        let out = self.in_transaction(|tx, next| {
            let mut stmt = tx.prepare_cached("INSERT INTO folds (id, into_id, folded_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING")?;
            let mut out = Vec::with_capacity(folds.len());
            for (id, into) in folds {
                out.push(stmt.execute(params![id.as_bytes().as_slice(), into.as_bytes().as_slice(), now])? == 1);
            }
            if let Some(folded) = crate::records::new_folds(folds, &out) {
                record = Some(log_record(tx, next, folded)?);
            }
            Ok(out)
        })?;
        self.index_records(record);
        Ok(out)
    }

    /// Records detection's hits (findings and their evidence) with the log's record of
    /// the new evidence, in one transaction. Findings are derived data: committed
    /// without an fsync of their own (the next event commit's fsync covers them in the
    /// WAL). A power loss can only lose them together with their done_seq (and their
    /// record), and the detection stage then derives them again from the events.
    pub(crate) fn record_hits(
        &mut self,
        hits: &[crate::findings::Hit],
        done_seq: i64,
    ) -> Result<Vec<uuid::Uuid>, StoreError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let mut record = None;
        let result = self.in_transaction(|tx, next| {
            let (touched, linked) = super::findings::record_hits(tx, hits, done_seq)?;
            if !linked.is_empty() {
                record = Some(log_record(tx, next, crate::records::evidence(&linked))?);
            }
            Ok(touched)
        });
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.index_records(record);
        result
    }

    /// Changes a finding's status with the log's record of the change, in one transaction.
    pub(crate) fn set_finding_status(
        &mut self,
        id: uuid::Uuid,
        change: &crate::findings::StatusChange,
        scope: &crate::Scope,
    ) -> Result<Option<crate::findings::Finding>, StoreError> {
        let mut record = None;
        let found = self.in_transaction(|tx, next| {
            let found = super::findings::set_status(tx, id, change, scope)?;
            if found.is_some() {
                let change = crate::records::status(id, change.status.as_str(), &change.by);
                record = Some(log_record(tx, next, change)?);
            }
            Ok(found)
        })?;
        self.index_records(record);
        Ok(found)
    }

    /// Brings rows the side tables held before records were kept under the log, once:
    /// at the first start after the upgrade (see `records::baseline`).
    pub(crate) fn record_baseline(&mut self) -> Result<(), StoreError> {
        let pending: bool = self.conn.query_row(
            "SELECT baseline_pending FROM side_records WHERE one = 1",
            [],
            |r| r.get(0),
        )?;
        if !pending {
            return Ok(());
        }
        let records = crate::records::baseline(&super::integrity::side_rows(&self.conn)?);
        let appended = self.in_transaction(|tx, next| {
            tx.execute("UPDATE side_records SET baseline_pending = 0", [])?;
            insert_events(tx, &records, next)
        })?;
        self.index(records.into(), &appended);
        Ok(())
    }

    /// Hands a committed record to the data-term index, as every stored event is.
    fn index_records(&mut self, record: Option<(EncodedEvent, Appended)>) {
        if let Some((event, appended)) = record {
            self.index(Arc::from(vec![event]), &[appended]);
        }
    }

    /// Counts, summarizes and marks the open folds of `into` in one transaction.
    pub(crate) fn summarize_folds(
        &mut self,
        into: uuid::Uuid,
        build: crate::SummaryBuilder,
    ) -> Result<Option<(u64, Appended)>, StoreError> {
        let mut summary = None;
        let out = self.in_transaction(|tx, next| {
            let key = into.as_bytes().as_slice();
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM folds WHERE into_id = ?1 AND summarized = 0",
                params![key],
                |r| r.get(0),
            )?;
            if count == 0 {
                return Ok(None);
            }
            let event = build(count as u64);
            let appended = insert_events(tx, std::slice::from_ref(&event), next)?;
            tx.execute(
                "UPDATE folds SET summarized = 1 WHERE into_id = ?1 AND summarized = 0",
                params![key],
            )?;
            summary = Some(event);
            Ok(appended.first().map(|a| (count as u64, *a)))
        })?;
        if let (Some(event), Some((_, appended))) = (summary, out) {
            self.index(Arc::from(vec![event]), &[appended]);
        }
        Ok(out)
    }

    /// Durably records an event the store refused.
    pub(crate) fn dead_letter(
        &mut self,
        id: uuid::Uuid,
        body: &[u8],
        error: &str,
    ) -> Result<(), StoreError> {
        let body = String::from_utf8_lossy(body);
        let now = unix_micros(time::OffsetDateTime::now_utc());
        self.conn.execute(
            "INSERT INTO dead_letters (event_id, body, error, failed_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.as_bytes().as_slice(), body, error, now],
        )?;
        Ok(())
    }

    /// Deletes dead letters by row id, in one transaction.
    pub(crate) fn remove_dead_letters(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?;
            for id in ids {
                stmt.execute(params![id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Takes and releases the write lock without writing.
    pub(crate) fn check_writable(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.rollback()?;
        Ok(())
    }

    /// The writer connection, for key management on the same store.
    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Inserts `batch` inside `tx`, numbering new events from `next.seq` on and adding each
/// to the integrity log.
fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    batch: &[EncodedEvent],
    next: &mut Next,
) -> Result<Vec<Appended>, StoreError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut stmt = tx.prepare_cached(INSERT)?;
    let seq = &mut next.seq;
    let mut stored = false;
    for encoded in batch {
        let e = &encoded.event;
        let body = std::str::from_utf8(&encoded.bytes)
            .map_err(|err| StoreError::Database(err.to_string()))?;
        let leaf = leaf_hash(&encoded.bytes);
        let inserted = stmt.execute(params![
            *seq,
            e.id.as_bytes().as_slice(),
            unix_micros(e.time),
            unix_micros(e.received_at),
            e.event_type,
            e.category.as_str(),
            e.severity.rank(),
            e.priority.rank(),
            e.outcome.as_str(),
            e.source,
            e.agent_id,
            e.actor.user_id,
            e.actor.ip,
            e.facility,
            e.correlation_id,
            body,
            leaf.as_slice(),
        ])?;
        if inserted == 1 {
            outcomes.push(Appended::Stored(*seq));
            *seq += 1;
            next.log.push(leaf);
            stored = true;
        } else {
            outcomes.push(Appended::Duplicate);
        }
    }
    if stored {
        tx.prepare_cached("UPDATE integrity_log SET frontier = ?1 WHERE one = 1")?
            .execute([next.log.to_bytes()])?;
    }
    Ok(outcomes)
}

/// The integrity log's frontier; on a store that has none yet (new, or from before the
/// log existed), a log that starts at `next_seq`.
/// Appends one record of the service's own inside `tx`.
fn log_record(
    tx: &rusqlite::Transaction<'_>,
    next: &mut Next,
    record: EncodedEvent,
) -> Result<(EncodedEvent, Appended), StoreError> {
    let appended = insert_events(tx, std::slice::from_ref(&record), next)?;
    Ok((record, appended[0]))
}

fn load_log(conn: &Connection, next_seq: i64) -> Result<Frontier, StoreError> {
    let stored: Option<Vec<u8>> = conn
        .query_row(
            "SELECT frontier FROM integrity_log WHERE one = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match stored {
        Some(bytes) => Frontier::from_bytes(&bytes)
            .map_err(|e| StoreError::Database(format!("integrity log: {e}"))),
        None => {
            let log = Frontier::new();
            conn.execute(
                "INSERT INTO integrity_log (one, start_seq, frontier) VALUES (1, ?1, ?2)",
                params![next_seq, log.to_bytes()],
            )?;
            Ok(log)
        }
    }
}

/// One past the highest sequence number ever handed out: stored, or deleted by retention.
fn next_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT MAX((SELECT COALESCE(MAX(seq), 0) FROM events),
                    (SELECT last_seq FROM retired_seq)) + 1",
        [],
        |r| r.get(0),
    )?)
}

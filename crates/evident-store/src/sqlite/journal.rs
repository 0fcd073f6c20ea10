//! The critical-event journal: a small SQLite file of its own (`critical.db`), written by
//! its own connection, so a critical event is durable and acknowledged without waiting
//! behind a bulk commit of the main database. The main writer moves journaled events into
//! the events table with its next commit and then removes them here; whatever a crash
//! leaves in the journal is moved at the next start.

use crate::error::StoreError;
use evident_model::EncodedEvent;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// File name of the journal inside the data directory.
pub const JOURNAL_FILE: &str = "critical.db";

/// The journal connection.
pub(crate) struct Journal {
    conn: Connection,
}

impl Journal {
    /// Opens (creating) the journal with the same durability settings as the main store.
    pub(crate) fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(data_dir.join(JOURNAL_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") || sync < 2 {
            return Err(StoreError::NotDurable(format!(
                "critical journal: journal_mode {mode}, synchronous {sync}"
            )));
        }
        conn.execute_batch("CREATE TABLE IF NOT EXISTS journal (id BLOB PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;")?;
        Ok(Self { conn })
    }

    /// Durably records `events` (one transaction, fsynced); says, in order, whether each
    /// is new here (an id already journaled is not written again).
    pub(crate) fn append<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a EncodedEvent>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut new = Vec::new();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO journal (id, body) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
            )?;
            for e in events {
                let body = std::str::from_utf8(&e.bytes)
                    .map_err(|err| StoreError::Database(err.to_string()))?;
                new.push(stmt.execute(params![e.event.id.as_bytes().as_slice(), body])? == 1);
            }
        }
        tx.commit()?;
        Ok(new)
    }

    /// Forgets events now stored in the main database.
    ///
    /// Without an fsync: a removal lost in a crash only means recovery moves the event
    /// again, and the store ignores an id it already holds. The next append's fsync makes
    /// it durable anyway. Skipping it keeps the journal lock short for critical appends.
    pub(crate) fn remove(&mut self, ids: &[uuid::Uuid]) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "OFF")?;
        let removed = self.remove_in_transaction(ids);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        removed
    }

    fn remove_in_transaction(&mut self, ids: &[uuid::Uuid]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM journal WHERE id = ?1")?;
            for id in ids {
                stmt.execute(params![id.as_bytes().as_slice()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The journaled event with this id, if any.
    pub(crate) fn get(&self, id: uuid::Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM journal WHERE id = ?1")?
            .query_row(params![id.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        Ok(body.map(String::into_bytes))
    }

    /// Every journaled event's canonical bytes.
    pub(crate) fn all(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT body FROM journal")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows
            .map(|r| r.map(String::into_bytes))
            .collect::<Result<_, _>>()?)
    }
}

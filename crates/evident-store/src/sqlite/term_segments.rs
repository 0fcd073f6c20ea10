//! Writing the embedded store's data-term segments (schema: migration 0008; layout:
//! [`crate::postings`]): new events' terms are buffered by the writer and written as a
//! segment every [`SEGMENT_EVENTS`] events, and full levels are merged upward.

use crate::error::StoreError;
use crate::postings::{self, Buffer, FANOUT, Posting, SEGMENT_EVENTS, TOP_LEVEL};
use crate::terms;
use evident_model::{Event, unix_micros};
use rusqlite::{Connection, params};

/// The writer's view of the index: where it ends and the terms of the events after it.
pub(crate) struct TermIndex {
    /// Highest sequence number a segment covers.
    indexed: i64,
    buffer: Buffer,
}

impl TermIndex {
    /// Loads where the index ends and buffers the events stored after it, writing
    /// segments on the way when there are many (a store from before the index).
    pub(crate) fn open(conn: &Connection) -> Result<Self, StoreError> {
        let indexed = indexed(conn)?;
        let mut index = Self {
            indexed,
            buffer: Buffer::default(),
        };
        index.catch_up(conn)?;
        Ok(index)
    }

    fn catch_up(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let mut after = self.indexed;
        let mut flushes = 0u64;
        loop {
            let rows: Vec<(i64, i64, Option<String>)> = {
                let mut stmt = conn.prepare(
                    "SELECT seq, time, json_extract(body, '$.data') FROM events
                     WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![after, SEGMENT_EVENTS as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            for (seq, time, data) in &rows {
                let data = data
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or_default();
                self.buffer.add(
                    Posting {
                        time: *time,
                        seq: *seq,
                    },
                    terms::of_data(&data),
                );
                after = *seq;
            }
            if self.buffer.events >= SEGMENT_EVENTS {
                self.flush(conn)?;
                flushes += 1;
                if flushes.is_multiple_of(64) {
                    tracing::info!(up_to_seq = after, "indexing the data of stored events");
                }
            }
            if rows.len() < SEGMENT_EVENTS {
                return Ok(());
            }
        }
    }

    /// Buffers the terms of `event`, just stored as `seq`.
    pub(crate) fn add(&mut self, seq: i64, event: &Event) {
        let posting = Posting {
            time: unix_micros(event.time),
            seq,
        };
        self.buffer.add(posting, terms::of_data(&event.data));
    }

    /// Writes a segment once enough events are buffered. The events are already
    /// committed, so a failure is logged and the terms stay buffered for the next try.
    pub(crate) fn flush_if_full(&mut self, conn: &Connection) {
        if self.buffer.events < SEGMENT_EVENTS {
            return;
        }
        if let Err(e) = self.flush(conn) {
            tracing::warn!(error = %e, "could not write a data-term segment; will retry");
        }
    }

    fn flush(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let Some((_, last)) = self.buffer.seqs else {
            return Ok(());
        };
        let tx = conn.unchecked_transaction()?;
        write_segment(&tx, 0, (self.indexed + 1, last), &mut self.buffer)?;
        merge_full_levels(&tx)?;
        tx.commit()?;
        self.indexed = last;
        self.buffer = Buffer::default();
        Ok(())
    }
}

/// The highest sequence number a segment covers (0 when none does).
pub(crate) fn indexed(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(last_seq), 0) FROM term_segments",
        [],
        |r| r.get(0),
    )?)
}

/// Inserts one segment at `level` covering `seqs` with the postings in `buffer`.
fn write_segment(
    conn: &Connection,
    level: i64,
    seqs: (i64, i64),
    buffer: &mut Buffer,
) -> Result<(), StoreError> {
    let (min_time, max_time) = buffer.times.unwrap_or((0, 0));
    let rows = buffer.rows();
    conn.execute(
        "INSERT INTO term_segments
             (level, first_seq, last_seq, events, min_time, max_time, packed_bits)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            level,
            seqs.0,
            seqs.1,
            buffer.events as i64,
            min_time,
            max_time,
            rows.bits
        ],
    )?;
    let segment = conn.last_insert_rowid();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO term_postings (segment, term, chunk, postings) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (term, chunk, bytes) in rows.rows {
        stmt.execute(params![segment, term, chunk, bytes])?;
    }
    Ok(())
}

/// Merges the oldest [`FANOUT`] segments of every level below [`TOP_LEVEL`] that has
/// that many into one segment of the next level.
fn merge_full_levels(conn: &Connection) -> Result<(), StoreError> {
    for level in 0..TOP_LEVEL {
        let group: Vec<(i64, i64, i64, i64, i64, i64)> = {
            let mut stmt = conn.prepare_cached(
                "SELECT id, first_seq, last_seq, events, min_time, max_time FROM term_segments
                 WHERE level = ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![level, FANOUT as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        if group.len() < FANOUT {
            continue;
        }
        let mut merged = Buffer::default();
        let mut read = conn
            .prepare_cached("SELECT term, chunk, postings FROM term_postings WHERE segment = ?1")?;
        for &(id, first, last, events, min_time, max_time) in &group {
            merged.cover(events as usize, (first, last), (min_time, max_time));
            let mut rows = read.query([id])?;
            while let Some(row) = rows.next()? {
                let bytes: Vec<u8> = row.get(2)?;
                let entries = postings::row_entries(row.get(0)?, row.get(1)?, &bytes)
                    .map_err(|e| StoreError::Database(format!("segment {id}: {e}")))?;
                for (term, list) in entries {
                    merged.extend(term, &list);
                }
            }
        }
        let seqs = merged.seqs.unwrap_or((0, 0));
        write_segment(conn, level + 1, seqs, &mut merged)?;
        for &(id, ..) in &group {
            conn.execute("DELETE FROM term_postings WHERE segment = ?1", [id])?;
            conn.execute("DELETE FROM term_segments WHERE id = ?1", [id])?;
        }
    }
    Ok(())
}

/// Drops segments all of whose events retention has deleted.
pub(crate) fn prune(conn: &Connection) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "DELETE FROM term_postings WHERE segment IN (SELECT id FROM term_segments
         WHERE last_seq < (SELECT MIN(seq) FROM events))",
        [],
    )?;
    tx.execute(
        "DELETE FROM term_segments WHERE last_seq < (SELECT MIN(seq) FROM events)",
        [],
    )?;
    tx.commit()?;
    Ok(())
}

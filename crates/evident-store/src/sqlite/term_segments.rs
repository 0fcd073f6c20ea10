//! Writing the embedded store's data-term segments (schema: migration 0008; layout:
//! [`crate::postings`]): new events' terms are buffered (by the indexer thread, see
//! `indexer`) and written as a segment every [`SEGMENT_EVENTS`] events, and full levels
//! are merged upward.

use crate::error::StoreError;
use crate::postings::{self, Buffer, FANOUT, Posting, SEGMENT_EVENTS, TOP_LEVEL};
use crate::terms;
use evident_model::{Event, unix_micros};
use rusqlite::{Connection, params};

/// Events buffered before a new segment is written. More than [`SEGMENT_EVENTS`]: each
/// segment is written through the single writer's connection, between two commits, and
/// fewer, bigger ones take less of the writer's time per event (the events not yet in a
/// segment are searched directly meanwhile).
#[cfg(not(test))]
const FLUSH_EVENTS: usize = 8 * SEGMENT_EVENTS;
/// As small as a segment in unit tests, so a few hundred events go through every level.
#[cfg(test)]
const FLUSH_EVENTS: usize = SEGMENT_EVENTS;

/// The index's state: where its segments end and the terms of the events after them.
pub(crate) struct TermIndex {
    /// Highest sequence number a segment covers.
    indexed: i64,
    buffer: Buffer,
}

/// A segment ready to write: its rows and what it covers.
pub(crate) struct Segment {
    rows: postings::SegmentRows,
    seqs: (i64, i64),
    events: usize,
    times: (i64, i64),
}

impl TermIndex {
    /// An index whose segments end at `indexed`, nothing buffered.
    pub(crate) fn new(indexed: i64) -> Self {
        Self {
            indexed,
            buffer: Buffer::default(),
        }
    }

    /// Highest sequence number a segment covers.
    pub(crate) fn indexed(&self) -> i64 {
        self.indexed
    }

    /// Buffers the terms of `event`, stored as `seq`.
    pub(crate) fn add(&mut self, seq: i64, event: &Event) {
        self.add_terms(seq, unix_micros(event.time), &event.data);
    }

    /// Buffers the terms of an event's `data`, stored as `seq` with time `time` (Unix
    /// microseconds).
    pub(crate) fn add_terms(
        &mut self,
        seq: i64,
        time: i64,
        data: &serde_json::Map<String, serde_json::Value>,
    ) {
        self.buffer.add(Posting { time, seq }, terms::of_data(data));
    }

    /// True once enough events are buffered for a segment.
    pub(crate) fn full(&self) -> bool {
        self.buffer.events >= FLUSH_EVENTS
    }

    /// The segment of what is buffered (sorting and encoding, no database work): at
    /// least `FLUSH_EVENTS` events when [`TermIndex::full`], more when the indexer took
    /// a bigger commit at once.
    pub(crate) fn segment(&mut self) -> Option<Segment> {
        let (_, last) = self.buffer.seqs?;
        Some(Segment {
            seqs: (self.indexed + 1, last),
            events: self.buffer.events,
            times: self.buffer.times.unwrap_or((0, 0)),
            rows: self.buffer.rows(),
        })
    }

    /// Writes `segment` (made by [`TermIndex::segment`]) in one transaction; on success
    /// the buffer is emptied. Full levels are merged afterwards ([`prepare_merge`]).
    pub(crate) fn write(&mut self, conn: &Connection, segment: Segment) -> Result<(), StoreError> {
        let tx = conn.unchecked_transaction()?;
        write_segment(&tx, 0, &segment)?;
        tx.commit()?;
        self.indexed = segment.seqs.1;
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

/// Inserts `segment` at `level`.
fn write_segment(conn: &Connection, level: i64, segment: &Segment) -> Result<(), StoreError> {
    let (min_time, max_time) = segment.times;
    conn.execute(
        "INSERT INTO term_segments
             (level, first_seq, last_seq, events, min_time, max_time, packed_bits)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            level,
            segment.seqs.0,
            segment.seqs.1,
            segment.events as i64,
            min_time,
            max_time,
            segment.rows.bits
        ],
    )?;
    let id = conn.last_insert_rowid();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO term_postings (segment, term, chunk, postings) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (term, chunk, bytes) in &segment.rows.rows {
        stmt.execute(params![id, term, chunk, bytes])?;
    }
    Ok(())
}

/// A merge prepared away from the writer: the segments it replaces and the one that
/// replaces them.
pub(crate) struct Merge {
    level: i64,
    group: Vec<i64>,
    merged: Segment,
}

/// Prepares the merge of the oldest [`FANOUT`] segments of the lowest level below
/// [`TOP_LEVEL`] that has that many, reading through `conn` (a read connection: the
/// decoding and encoding happen without holding the writer).
pub(crate) fn prepare_merge(conn: &Connection) -> Result<Option<Merge>, StoreError> {
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
        let merged = Segment {
            seqs: merged.seqs.unwrap_or((0, 0)),
            events: merged.events,
            times: merged.times.unwrap_or((0, 0)),
            rows: merged.rows(),
        };
        return Ok(Some(Merge {
            level,
            group: group.iter().map(|g| g.0).collect(),
            merged,
        }));
    }
    Ok(None)
}

/// Writes a prepared merge in one transaction on the writer's connection: the merged
/// segment in, the segments it replaces out. Nothing is written when one of them is
/// gone meanwhile (retention dropped it); `false` then.
pub(crate) fn apply_merge(conn: &Connection, merge: &Merge) -> Result<bool, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut present = tx.prepare_cached("SELECT 1 FROM term_segments WHERE id = ?1")?;
    for id in &merge.group {
        if !present.exists([id])? {
            return Ok(false);
        }
    }
    drop(present);
    write_segment(&tx, merge.level + 1, &merge.merged)?;
    for id in &merge.group {
        tx.execute("DELETE FROM term_postings WHERE segment = ?1", [id])?;
        tx.execute("DELETE FROM term_segments WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(true)
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

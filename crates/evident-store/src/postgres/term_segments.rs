//! Writing PostgreSQL's data-term segments (schema: migration 0004; layout:
//! [`crate::postings`]). Unlike the embedded store, whose single writer buffers terms
//! as it appends, segments here are built from committed events read back by sequence
//! number, so they stay complete whichever server (or how many) wrote the events. The
//! work runs after appends, off their path, one builder at a time (an advisory lock).

use crate::error::StoreError;
use crate::postings::{self, Buffer, FANOUT, Posting, SEGMENT_EVENTS, TOP_LEVEL};
use crate::terms;
use evident_model::unix_micros;
use tokio_postgres::{GenericClient, Transaction};

/// Key of the advisory lock held while a segment is written.
const SEGMENT_LOCK: i64 = 0x6576_6964_656e_7402;

/// What [`build_next`] did.
pub(crate) enum Built {
    /// A segment now covers events up to this sequence number; call again.
    Segment(i64),
    /// Fewer than [`SEGMENT_EVENTS`] events wait past the segments, which end here.
    Waiting(i64),
    /// Another builder holds the lock.
    Busy,
}

/// Builds the next segment if [`SEGMENT_EVENTS`] events wait past the last one.
pub(crate) async fn build_next(tx: &Transaction<'_>) -> Result<Built, StoreError> {
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&SEGMENT_LOCK])
        .await?
        .get(0);
    if !locked {
        return Ok(Built::Busy);
    }
    let indexed = indexed(tx).await?;
    // Writers commit in sequence order (the commit_seq row lock), so the events seen
    // past `indexed` have no gaps a later commit could fill.
    let rows = tx
        .query(
            "SELECT seq, time, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&indexed, &(SEGMENT_EVENTS as i64)],
        )
        .await?;
    if rows.len() < SEGMENT_EVENTS {
        return Ok(Built::Waiting(indexed));
    }
    let mut buffer = Buffer::default();
    let mut last = indexed;
    for row in &rows {
        let data: serde_json::Value = row.get(2);
        let terms = data.as_object().map(terms::of_data).unwrap_or_default();
        last = row.get(0);
        let posting = Posting {
            time: unix_micros(row.get(1)),
            seq: last,
        };
        buffer.add(posting, terms);
    }
    write_segment(tx, 0, (indexed + 1, last), &mut buffer).await?;
    merge_full_levels(tx).await?;
    Ok(Built::Segment(last))
}

/// The highest sequence number a segment covers (0 when none does).
pub(crate) async fn indexed(client: &impl GenericClient) -> Result<i64, StoreError> {
    Ok(client
        .query_one(
            "SELECT COALESCE(MAX(last_seq), 0)::int8 FROM term_segments",
            &[],
        )
        .await?
        .get(0))
}

/// Inserts one segment at `level` covering `seqs` with the postings in `buffer`.
async fn write_segment(
    tx: &Transaction<'_>,
    level: i32,
    seqs: (i64, i64),
    buffer: &mut Buffer,
) -> Result<(), StoreError> {
    let (min_time, max_time) = buffer.times.unwrap_or((0, 0));
    let rows = buffer.rows();
    let bits = rows.bits as i32;
    let segment: i64 = tx
        .query_one(
            "INSERT INTO term_segments
                 (level, first_seq, last_seq, events, min_time, max_time, packed_bits)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &level,
                &seqs.0,
                &seqs.1,
                &(buffer.events as i64),
                &min_time,
                &max_time,
                &bits,
            ],
        )
        .await?
        .get(0);
    let terms: Vec<i64> = rows.rows.iter().map(|r| r.0).collect();
    let chunks: Vec<i32> = rows.rows.iter().map(|r| r.1 as i32).collect();
    let lists: Vec<&[u8]> = rows.rows.iter().map(|r| r.2.as_slice()).collect();
    tx.execute(
        "INSERT INTO term_postings (segment, term, chunk, postings)
         SELECT $1, * FROM unnest($2::int8[], $3::int4[], $4::bytea[])",
        &[&segment, &terms, &chunks, &lists],
    )
    .await?;
    Ok(())
}

/// Merges the oldest [`FANOUT`] segments of every level below [`TOP_LEVEL`] that has
/// that many into one segment of the next level.
async fn merge_full_levels(tx: &Transaction<'_>) -> Result<(), StoreError> {
    for level in 0..TOP_LEVEL as i32 {
        let group = tx
            .query(
                "SELECT id, first_seq, last_seq, events, min_time, max_time FROM term_segments
                 WHERE level = $1 ORDER BY id LIMIT $2",
                &[&level, &(FANOUT as i64)],
            )
            .await?;
        if group.len() < FANOUT {
            continue;
        }
        let mut merged = Buffer::default();
        let ids: Vec<i64> = group.iter().map(|r| r.get(0)).collect();
        for r in &group {
            merged.cover(
                r.get::<_, i64>(3) as usize,
                (r.get(1), r.get(2)),
                (r.get(4), r.get(5)),
            );
        }
        for row in tx
            .query(
                "SELECT segment, term, chunk, postings FROM term_postings WHERE segment = ANY($1)",
                &[&ids],
            )
            .await?
        {
            let segment: i64 = row.get(0);
            let chunk: i32 = row.get(2);
            let entries = postings::row_entries(row.get(1), chunk.into(), row.get(3))
                .map_err(|e| StoreError::Database(format!("segment {segment}: {e}")))?;
            for (term, list) in entries {
                merged.extend(term, &list);
            }
        }
        let seqs = merged.seqs.unwrap_or((0, 0));
        write_segment(tx, level + 1, seqs, &mut merged).await?;
        tx.execute("DELETE FROM term_postings WHERE segment = ANY($1)", &[&ids])
            .await?;
        tx.execute("DELETE FROM term_segments WHERE id = ANY($1)", &[&ids])
            .await?;
    }
    Ok(())
}

/// Drops segments all of whose events retention has deleted.
pub(crate) async fn prune(client: &impl GenericClient) -> Result<(), StoreError> {
    client
        .batch_execute(
            "DELETE FROM term_postings WHERE segment IN (SELECT id FROM term_segments
               WHERE last_seq < (SELECT MIN(seq) FROM events));
             DELETE FROM term_segments WHERE last_seq < (SELECT MIN(seq) FROM events);",
        )
        .await?;
    Ok(())
}

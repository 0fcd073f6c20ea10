//! Answering data filters (`data.<path>=v`) in the embedded store from its term segments.
//!
//! The first data filter's term is looked up in every segment whose time range can
//! matter; their posting lists are merged newest first and the candidates fetched by
//! sequence number in growing batches, with every filter (the exact data comparison
//! included) applied to them, until enough match. Events stored after the last segment
//! (at most a few thousand) are searched directly. One read transaction covers it all,
//! so the segments and the events are seen as of the same commit.

use super::read::{Filter, Row, rows};
use crate::error::StoreError;
use crate::postings::{self, Bounds, Merge, Posting, Step};
use crate::query::EventQuery;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};

/// Candidates fetched at once, at first and at most.
const FIRST_BATCH: usize = 64;
const MAX_BATCH: usize = 4_096;

/// The newest `want` events matching `q`, whose filter (cursor included) is `f`,
/// `term` being the term of its first data filter.
pub(super) fn newest(
    conn: &Connection,
    q: &EventQuery,
    f: &Filter,
    term: i64,
    want: usize,
) -> Result<Vec<Row>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let indexed = super::term_segments::indexed(&tx)?;
    let recent = unindexed(&tx, f, indexed, want)?;
    let older = in_segments(&tx, q, f, term, want)?;
    Ok(postings::merge_newest(recent, older, want, |r: &Row| {
        (r.time, r.seq)
    }))
}

/// The newest `want` matches among the events no segment covers yet.
fn unindexed(
    conn: &Connection,
    f: &Filter,
    indexed: i64,
    want: usize,
) -> Result<Vec<Row>, StoreError> {
    // Materialized, so the planner reads the few rows past `indexed` by sequence number
    // rather than walking a filter's index over the whole table.
    let sql = format!(
        "WITH recent AS MATERIALIZED (SELECT * FROM events WHERE seq > ?)
         SELECT seq, time, body FROM recent{} ORDER BY time DESC, seq DESC LIMIT ?",
        f.sql()
    );
    let mut values = vec![Sql::Integer(indexed)];
    values.extend(f.values.iter().cloned());
    values.push(Sql::Integer(want as i64));
    rows(conn, &sql, &values)
}

/// The newest `want` events that carry `term` in the segments and match `f`.
fn in_segments(
    conn: &Connection,
    q: &EventQuery,
    f: &Filter,
    term: i64,
    want: usize,
) -> Result<Vec<Row>, StoreError> {
    let bounds = Bounds::of(q);
    let (from, newest) = bounds.times();
    let mut packed_bits = std::collections::HashMap::new();
    let segments = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, max_time, packed_bits FROM term_segments
              WHERE max_time >= ?1 AND min_time < ?2",
        )?;
        let mut rows = stmt.query(params![from, newest])?;
        let mut segments = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            segments.push((id, row.get(1)?));
            if let Some(bits) = row.get::<_, Option<u32>>(2)? {
                packed_bits.insert(id, bits);
            }
        }
        segments
    };
    let mut merge = Merge::new(segments, bounds);
    let mut load = conn.prepare_cached(
        "SELECT postings FROM term_postings WHERE segment = ?1 AND term = ?2 AND chunk = ?3",
    )?;
    let mut load_chunk = |segment: i64, chunk: i64| -> Result<Vec<Posting>, StoreError> {
        let mut row = |key: i64, chunk: i64| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(load
                .query_row(params![segment, key, chunk], |r| r.get(0))
                .optional()?)
        };
        let own = row(term, chunk)?;
        let packed = match packed_bits.get(&segment) {
            Some(&bits) if own.is_none() && chunk == 0 => {
                row(postings::pack_key(term, bits), postings::PACKED)?
            }
            _ => None,
        };
        postings::chunk_of(term, own.as_deref(), packed.as_deref())
            .map_err(|e| StoreError::Database(format!("segment {segment}: {e}")))
    };
    // The CROSS JOIN keeps the candidates as the outer loop: each event is found by its
    // sequence number, whatever other filters the query has.
    let fetch = format!(
        "SELECT seq, time, body FROM (SELECT e.* FROM json_each(?) AS c
         CROSS JOIN events AS e ON e.seq = c.value){}",
        f.sql()
    );
    let mut found = Vec::new();
    let mut batch = FIRST_BATCH.max(want);
    let mut candidates = Vec::with_capacity(batch);
    loop {
        let step = merge.next();
        match step {
            Step::Load { segment, chunk } => {
                merge.supply(load_chunk(segment, chunk)?);
                continue;
            }
            Step::Posting(p) => {
                candidates.push(p.seq);
                if candidates.len() < batch {
                    continue;
                }
            }
            Step::Done => {}
        }
        if !candidates.is_empty() {
            let mut values = vec![Sql::Text(
                serde_json::to_string(&candidates).unwrap_or_default(),
            )];
            values.extend(f.values.iter().cloned());
            let mut fetched = rows(conn, &fetch, &values)?;
            fetched.sort_unstable_by_key(|r| std::cmp::Reverse((r.time, r.seq)));
            found.extend(fetched);
            candidates.clear();
            batch = (batch * 2).min(MAX_BATCH);
        }
        if step == Step::Done || found.len() >= want {
            found.truncate(want);
            return Ok(found);
        }
    }
}

//! Answering data filters (`data.<path>=v`) in PostgreSQL from the term segments, as
//! the embedded store does: the first data filter's term is merged newest first over
//! the segments ([`Merge`]), the candidates are read by `(time, seq)` in growing batches
//! with every filter applied, and events past the last segment are searched through the
//! `seq` index. One repeatable-read transaction sees segments and events as of one commit.

use super::read::{Filter, MICROS};
use crate::error::StoreError;
use crate::postings::{self, Bounds, Merge, Posting, Step};
use crate::query::EventQuery;
use std::collections::HashMap;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Row, Transaction};

/// Candidates fetched at once, at first and at most.
const FIRST_BATCH: usize = 64;
const MAX_BATCH: usize = 4_096;

/// The newest `want` events matching `q`, whose filter (cursor included) is `f`,
/// `term` being the term of its first data filter; rows are `(seq, micros, body)`.
pub(super) async fn newest(
    client: &mut Client,
    q: &EventQuery,
    f: &Filter,
    term: i64,
    want: usize,
) -> Result<Vec<Row>, StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let indexed = super::term_segments::indexed(&tx).await?;
    let recent = unindexed(&tx, f, indexed, want).await?;
    let older = in_segments(&tx, q, f, term, want).await?;
    tx.commit().await?;
    Ok(postings::merge_newest(recent, older, want, |r: &Row| {
        (r.get::<_, i64>(1), r.get::<_, i64>(0))
    }))
}

/// The newest `want` matches among the events no segment covers yet.
async fn unindexed(
    tx: &Transaction<'_>,
    f: &Filter,
    indexed: i64,
    want: usize,
) -> Result<Vec<Row>, StoreError> {
    let n = f.values.len();
    // Materialized, so the few rows past `indexed` come off the `seq` index rather than
    // a filter's index walked over the whole table.
    let sql = format!(
        "WITH recent AS MATERIALIZED (SELECT * FROM events WHERE seq > ${})
         SELECT seq, {MICROS}, body FROM recent{} ORDER BY time DESC, seq DESC LIMIT ${}",
        n + 1,
        f.sql(),
        n + 2
    );
    let want = want as i64;
    let mut params = f.params();
    params.push(&indexed);
    params.push(&want);
    Ok(tx.query(&sql, &params).await?)
}

/// The newest `want` events that carry `term` in the segments and match `f`.
async fn in_segments(
    tx: &Transaction<'_>,
    q: &EventQuery,
    f: &Filter,
    term: i64,
    want: usize,
) -> Result<Vec<Row>, StoreError> {
    let bounds = Bounds::of(q);
    let (from, newest) = bounds.times();
    let mut segments = Vec::new();
    let mut packed_bits = HashMap::new();
    for r in tx
        .query(
            "SELECT id, max_time, packed_bits FROM term_segments
              WHERE max_time >= $1 AND min_time < $2",
            &[&from, &newest],
        )
        .await?
    {
        let id: i64 = r.get(0);
        segments.push((id, r.get(1)));
        if let Some(bits) = r.get::<_, Option<i32>>(2) {
            packed_bits.insert(id, bits as u32);
        }
    }
    // Every segment's first chunk of the term, own or packed, in one round trip; later
    // chunks as the merge needs them.
    let mut keys: (Vec<i64>, Vec<i64>, Vec<i32>) = Default::default();
    for (id, _) in &segments {
        keys.0.push(*id);
        keys.1.push(term);
        keys.2.push(0);
        if let Some(&bits) = packed_bits.get(id) {
            keys.0.push(*id);
            keys.1.push(postings::pack_key(term, bits));
            keys.2.push(postings::PACKED as i32);
        }
    }
    let mut first: HashMap<(i64, i32), Vec<u8>> = tx
        .query(
            "SELECT segment, chunk, postings FROM term_postings
              WHERE (segment, term, chunk) IN
                    (SELECT * FROM unnest($1::int8[], $2::int8[], $3::int4[]))",
            &[&keys.0, &keys.1, &keys.2],
        )
        .await?
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let mut merge = Merge::new(segments, bounds);
    let n = f.values.len();
    // Materialized, so each candidate is read by its key whatever other filters the
    // query has (the planner would otherwise weigh the data filter's GIN index).
    let fetch = format!(
        "WITH found AS MATERIALIZED (
             SELECT events.* FROM unnest(${}::int8[], ${}::timestamptz[]) AS k(k_seq, k_time)
             JOIN events ON seq = k_seq AND time = k_time)
         SELECT seq, {MICROS}, body FROM found{} ORDER BY time DESC, seq DESC",
        n + 1,
        n + 2,
        f.sql()
    );
    let mut found = Vec::new();
    let mut batch = FIRST_BATCH.max(want);
    let mut candidates: Vec<Posting> = Vec::with_capacity(batch);
    loop {
        let step = merge.next();
        match step {
            Step::Load { segment, chunk } => {
                let list = if chunk == 0 {
                    let own = first.remove(&(segment, 0));
                    let packed = first.remove(&(segment, postings::PACKED as i32));
                    postings::chunk_of(term, own.as_deref(), packed.as_deref())
                } else {
                    let own: Option<Vec<u8>> = tx
                        .query_opt(
                            "SELECT postings FROM term_postings
                              WHERE segment = $1 AND term = $2 AND chunk = $3",
                            &[&segment, &term, &(chunk as i32)],
                        )
                        .await?
                        .map(|r| r.get(0));
                    postings::chunk_of(term, own.as_deref(), None)
                };
                let list =
                    list.map_err(|e| StoreError::Database(format!("segment {segment}: {e}")))?;
                merge.supply(list);
                continue;
            }
            Step::Posting(p) => {
                candidates.push(p);
                if candidates.len() < batch {
                    continue;
                }
            }
            Step::Done => {}
        }
        if !candidates.is_empty() {
            let seqs: Vec<i64> = candidates.iter().map(|p| p.seq).collect();
            let times: Vec<OffsetDateTime> =
                candidates.iter().map(|p| super::read::at(p.time)).collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = f.params();
            params.push(&seqs);
            params.push(&times);
            found.extend(tx.query(&fetch, &params).await?);
            candidates.clear();
            batch = (batch * 2).min(MAX_BATCH);
        }
        if step == Step::Done || found.len() >= want {
            found.truncate(want);
            return Ok(found);
        }
    }
}

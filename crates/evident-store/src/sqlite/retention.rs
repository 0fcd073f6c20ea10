//! Retention in the embedded store: expired events are deleted in small transactions,
//! one rule at a time (each type-prefix override, then each category with the overrides'
//! types left out), so the writer is never held for long.

use super::write::WriterLock;
use crate::error::StoreError;
use crate::query::prefix_end;
use crate::retention::RetentionPolicy;
use evident_integrity::{Frontier, Hash};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, params_from_iter};

/// Events deleted per transaction.
const CHUNK: i64 = 2_000;

/// Deletes every event past `policy` as of `now_micros`; returns how many.
pub(crate) fn enforce(
    writer: &WriterLock,
    policy: &RetentionPolicy,
    now_micros: i64,
) -> Result<u64, StoreError> {
    let cutoff = |days: u32| now_micros - i64::from(days) * 86_400_000_000;
    let prefixes = policy.type_rules();
    let mut removed = 0;
    for (prefix, days) in prefixes {
        let mut clause = String::from("type >= ? AND type < ? AND time < ?");
        let mut values = vec![
            Sql::Text(prefix.clone()),
            Sql::Text(prefix_end(prefix)),
            Sql::Integer(cutoff(*days)),
        ];
        // A longer prefix inside this one has a rule of its own.
        for (inner, _) in prefixes {
            if inner != prefix && inner.starts_with(prefix.as_str()) {
                exclude(&mut clause, &mut values, inner);
            }
        }
        removed += delete_matching(writer, &clause, &values)?;
    }
    for (category, days) in policy.category_rules() {
        let mut clause = String::from("category = ? AND time < ?");
        let mut values = vec![
            Sql::Text(category.as_str().into()),
            Sql::Integer(cutoff(days)),
        ];
        for (prefix, _) in prefixes {
            exclude(&mut clause, &mut values, prefix);
        }
        removed += delete_matching(writer, &clause, &values)?;
    }
    Ok(removed)
}

fn exclude(clause: &mut String, values: &mut Vec<Sql>, prefix: &str) {
    clause.push_str(" AND NOT (type >= ? AND type < ?)");
    values.push(Sql::Text(prefix.to_owned()));
    values.push(Sql::Text(prefix_end(prefix)));
}

/// Deletes the events matching `clause` (constant fragments, values bound) in chunks,
/// recording the highest deleted sequence number so it is never handed out again.
fn delete_matching(writer: &WriterLock, clause: &str, values: &[Sql]) -> Result<u64, StoreError> {
    let sql = format!(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {clause} LIMIT ?) RETURNING seq, leaf"
    );
    let mut params = values.to_vec();
    params.push(Sql::Integer(CHUNK));
    let mut total = 0;
    loop {
        let mut writer = writer.lock();
        let tx = writer
            .conn()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let deleted: Vec<(i64, Option<Vec<u8>>)> = {
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(params.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        // The integrity log keeps each removed event's leaf hash (events from before the
        // log have none).
        {
            let mut keep = tx.prepare_cached(
                "INSERT OR IGNORE INTO pruned_leaves (seq, leaf) VALUES (?1, ?2)",
            )?;
            for (seq, leaf) in &deleted {
                if let Some(leaf) = leaf {
                    keep.execute(rusqlite::params![seq, leaf])?;
                }
            }
        }
        if let Some(max) = deleted.iter().map(|(seq, _)| seq).max() {
            tx.execute("UPDATE retired_seq SET last_seq = MAX(last_seq, ?1)", [max])?;
        }
        tx.commit()?;
        total += deleted.len() as u64;
        if (deleted.len() as i64) < CHUNK {
            return Ok(total);
        }
    }
}

/// Folds the removed events at the start of the integrity log into its base frontier, up
/// to the largest signed checkpoint they reach: that checkpoint then vouches for the
/// frontier, and their kept leaf hashes can go. Returns how many were folded.
pub(crate) fn fold_log_start(writer: &WriterLock) -> Result<u64, StoreError> {
    let mut writer = writer.lock();
    let tx = writer
        .conn()
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (start, base): (i64, Option<Vec<u8>>) = tx.query_row(
        "SELECT start_seq, base_frontier FROM integrity_log WHERE one = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut frontier = match base {
        Some(bytes) => Frontier::from_bytes(&bytes)
            .map_err(|e| StoreError::Database(format!("integrity log base: {e}")))?,
        None => Frontier::new(),
    };
    let first_held = start + frontier.size() as i64;
    // The removed run at the log's start ends where the first event still held is.
    let next_event: Option<i64> = tx.query_row(
        "SELECT MIN(seq) FROM events WHERE seq >= ?1",
        [first_held],
        |r| r.get(0),
    )?;
    let run_end = next_event.unwrap_or(i64::MAX);
    let target: Option<i64> = tx.query_row(
        "SELECT MAX(size) FROM checkpoints WHERE size > ?1 AND size <= ?2",
        rusqlite::params![frontier.size() as i64, run_end.saturating_sub(start)],
        |r| r.get(0),
    )?;
    let Some(target) = target else {
        return Ok(0);
    };
    let end = start + target;
    let mut folded = 0u64;
    {
        let mut stmt = tx.prepare(
            "SELECT seq, leaf FROM pruned_leaves WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
        )?;
        let mut rows = stmt.query([first_held, end])?;
        let mut expected = first_held;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let leaf: Vec<u8> = row.get(1)?;
            let leaf: Hash = leaf.try_into().map_err(|_| {
                StoreError::Database(format!("the kept leaf hash of event {seq} is not 32 bytes"))
            })?;
            if seq != expected {
                // A gap in the kept hashes: leave the log as it is for verify to report.
                return Ok(0);
            }
            frontier.push(leaf);
            expected += 1;
            folded += 1;
        }
        if expected != end {
            return Ok(0);
        }
    }
    // Fold only what the checkpoint vouches for: a changed kept hash stays where it is,
    // for verify to name its range.
    let signed_root: Option<Vec<u8>> = tx
        .query_row(
            "SELECT root FROM checkpoints WHERE size = ?1 ORDER BY time DESC LIMIT 1",
            [target],
            |r| r.get(0),
        )
        .optional()?;
    if signed_root.as_deref() != Some(frontier.root().as_slice()) {
        return Ok(0);
    }
    tx.execute(
        "UPDATE integrity_log SET base_frontier = ?1 WHERE one = 1",
        [frontier.to_bytes()],
    )?;
    tx.execute(
        "DELETE FROM pruned_leaves WHERE seq >= ?1 AND seq < ?2",
        [first_held, end],
    )?;
    tx.commit()?;
    Ok(folded)
}

//! Retention in the embedded store: expired events are deleted in small transactions,
//! one rule at a time (each type-prefix override, then each category with the overrides'
//! types left out), so the writer is never held for long.

use super::write::Writer;
use crate::error::StoreError;
use crate::query::prefix_end;
use crate::retention::RetentionPolicy;
use rusqlite::params_from_iter;
use rusqlite::types::Value as Sql;

/// Events deleted per transaction.
const CHUNK: i64 = 2_000;

/// Deletes every event past `policy` as of `now_micros`; returns how many.
pub(crate) fn enforce(
    writer: &std::sync::Mutex<Writer>,
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
fn delete_matching(
    writer: &std::sync::Mutex<Writer>,
    clause: &str,
    values: &[Sql],
) -> Result<u64, StoreError> {
    let sql = format!(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {clause} LIMIT ?) RETURNING seq"
    );
    let mut params = values.to_vec();
    params.push(Sql::Integer(CHUNK));
    let mut total = 0;
    loop {
        let mut writer = writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = writer
            .conn()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let deleted: Vec<i64> = {
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(params.iter()), |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if let Some(max) = deleted.iter().max() {
            tx.execute("UPDATE retired_seq SET last_seq = MAX(last_seq, ?1)", [max])?;
        }
        tx.commit()?;
        total += deleted.len() as u64;
        if (deleted.len() as i64) < CHUNK {
            return Ok(total);
        }
    }
}

//! Findings in the embedded store, and the detection stage's checkpoint.

use super::read::Filter;
use crate::error::StoreError;
use crate::findings::{
    DetectionCheckpoint, EVIDENCE_LIMIT, Finding, FindingCursor, FindingPage, FindingQuery, Hit,
    StatusChange, extend_evidence, open_key,
};
use crate::query::Scope;
use evident_model::{Severity, from_unix_micros, unix_micros};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, params_from_iter};
use uuid::Uuid;

const COLUMNS: &str = "row, id, rule_id, title, severity, group_key, tags, facility, evidence, \
                       first_seen, last_seen, count, status, status_by, status_at";

pub(super) fn committed_after(
    conn: &Connection,
    seq: i64,
    limit: usize,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let rows = stmt.query_map(params![seq, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?.into_bytes()))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn last_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
}

pub(super) fn checkpoint(conn: &Connection) -> Result<DetectionCheckpoint, StoreError> {
    let (done_seq, state_seq, state) = conn.query_row(
        "SELECT done_seq, state_seq, state FROM detection_checkpoint WHERE one = 1",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        },
    )?;
    Ok(DetectionCheckpoint {
        done_seq,
        state: state_seq.zip(state),
    })
}

pub(super) fn save_state(conn: &Connection, seq: i64, state: &[u8]) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE detection_checkpoint SET state_seq = ?1, state = ?2 WHERE one = 1",
        params![seq, state],
    )?;
    Ok(())
}

/// Records `hits` in `tx`; gives the findings touched and the evidence newly linked.
pub(super) fn record_hits(
    tx: &Transaction<'_>,
    hits: &[Hit],
    done_seq: i64,
) -> Result<(Vec<Uuid>, Vec<crate::records::Linked>), StoreError> {
    let mut touched = Vec::with_capacity(hits.len());
    let mut linked = Vec::new();
    for hit in hits {
        let key = open_key(&hit.rule_id, &hit.group_key);
        let (first, last) = (unix_micros(hit.first), unix_micros(hit.last));
        let firings = i64::try_from(hit.firings.max(1)).unwrap_or(i64::MAX);
        // The evidence comes back only while it has room: a full list is left as it is.
        let open = tx
            .prepare_cached(
                "SELECT row, id, CASE WHEN json_array_length(evidence) < ?2 THEN evidence END
                   FROM findings WHERE open_key = ?1",
            )?
            .query_row(params![key, EVIDENCE_LIMIT as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        let (row, id) = match open {
            Some((row, id, evidence)) => {
                let evidence = evidence.map(|text| {
                    let mut evidence: Vec<Uuid> = serde_json::from_str(&text).unwrap_or_default();
                    extend_evidence(&mut evidence, &hit.events);
                    json(&evidence)
                });
                tx.prepare_cached(
                    "UPDATE findings SET evidence = COALESCE(?2, evidence),
                            first_seen = MIN(first_seen, ?3), last_seen = MAX(last_seen, ?4),
                            count = count + ?5, severity = MAX(severity, ?6)
                      WHERE row = ?1",
                )?
                .execute(params![
                    row,
                    evidence,
                    first,
                    last,
                    firings,
                    hit.severity.rank(),
                ])?;
                (row, Uuid::from_slice(&id).map_err(bad_row)?)
            }
            None => {
                let id = Uuid::now_v7();
                let mut evidence = Vec::new();
                extend_evidence(&mut evidence, &hit.events);
                tx.prepare_cached(
                    "INSERT INTO findings (id, rule_id, title, severity, group_key, tags, facility,
                            evidence, first_seen, last_seen, count, status, open_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'open', ?12)",
                )?
                .execute(params![
                    id.as_bytes().as_slice(),
                    hit.rule_id,
                    hit.title,
                    hit.severity.rank(),
                    hit.group_key,
                    json(&hit.tags),
                    hit.facility,
                    json(&evidence),
                    first,
                    last,
                    firings,
                    key,
                ])?;
                (tx.last_insert_rowid(), id)
            }
        };
        let mut link = tx.prepare_cached(
            "INSERT OR IGNORE INTO finding_events (event_id, finding) VALUES (?1, ?2)",
        )?;
        let mut new = Vec::new();
        for event in &hit.events {
            if link.execute(params![event.as_bytes().as_slice(), row])? == 1 {
                new.push(*event);
            }
        }
        if !new.is_empty() {
            linked.push(crate::records::Linked {
                finding: id,
                rule: hit.rule_id.clone(),
                events: new,
            });
        }
        touched.push(id);
    }
    tx.execute(
        "UPDATE detection_checkpoint SET done_seq = MAX(done_seq, ?1) WHERE one = 1",
        [done_seq],
    )?;
    Ok((touched, linked))
}

pub(super) fn get(
    conn: &Connection,
    id: Uuid,
    scope: &Scope,
) -> Result<Option<Finding>, StoreError> {
    let mut f = Filter::default();
    f.add("id = ?", [Sql::Blob(id.as_bytes().to_vec())]);
    f.scope(scope);
    let sql = format!("SELECT {COLUMNS} FROM findings{}", f.sql());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(f.values.iter()))?;
    match rows.next()? {
        Some(row) => Ok(Some(finding(row)?.1)),
        None => Ok(None),
    }
}

pub(super) fn query(conn: &Connection, q: &FindingQuery) -> Result<FindingPage, StoreError> {
    let mut f = Filter::default();
    if let Some(status) = q.status {
        f.add("status = ?", [Sql::Text(status.as_str().into())]);
    }
    f.text("rule_id = ?", &q.rule_id);
    if let Some(s) = q.severity {
        f.add("severity = ?", [Sql::Integer(i64::from(s.rank()))]);
    }
    if let Some(s) = q.min_severity {
        f.add("severity >= ?", [Sql::Integer(i64::from(s.rank()))]);
    }
    f.text("facility = ?", &q.facility);
    if let Some(from) = q.from {
        f.add("last_seen >= ?", [Sql::Integer(from)]);
    }
    if let Some(to) = q.to {
        f.add("first_seen < ?", [Sql::Integer(to)]);
    }
    if let Some(FindingCursor(row)) = q.cursor {
        f.add("row < ?", [Sql::Integer(row)]);
    }
    f.scope(&q.scope);
    let sql = format!(
        "SELECT {COLUMNS} FROM findings{} ORDER BY row DESC LIMIT ?",
        f.sql()
    );
    let mut values = f.values;
    values.push(Sql::Integer(q.limit as i64 + 1));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(values.iter()))?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(finding(row)?);
    }
    Ok(FindingPage::from_rows(found, q.limit))
}

pub(super) fn set_status(
    conn: &Connection,
    id: Uuid,
    change: &StatusChange,
    scope: &Scope,
) -> Result<Option<Finding>, StoreError> {
    if get(conn, id, scope)?.is_none() {
        return Ok(None);
    }
    // Resolving frees the rule and group for a new finding; reopening a resolved one
    // takes the key back unless a newer finding holds it (then the unique key refuses).
    conn.execute(
        "UPDATE findings SET status = ?2, status_by = ?3, status_at = ?4,
                open_key = CASE WHEN ?2 = 'resolved' THEN NULL
                                ELSE rule_id || char(31) || group_key END
          WHERE id = ?1",
        params![
            id.as_bytes().as_slice(),
            change.status.as_str(),
            change.by,
            change.at
        ],
    )
    .map_err(|e| match StoreError::from(e) {
        StoreError::Rejected(_) => StoreError::Rejected(
            "a newer finding of this rule and group is open; reopen that one instead".into(),
        ),
        other => other,
    })?;
    get(conn, id, scope)
}

pub(super) fn for_event(
    conn: &Connection,
    event: Uuid,
    scope: &Scope,
) -> Result<Vec<Finding>, StoreError> {
    let mut f = Filter::default();
    f.add(
        "row IN (SELECT finding FROM finding_events WHERE event_id = ?)",
        [Sql::Blob(event.as_bytes().to_vec())],
    );
    f.scope(scope);
    let sql = format!("SELECT {COLUMNS} FROM findings{} ORDER BY row", f.sql());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(f.values.iter()))?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(finding(row)?.1);
    }
    Ok(found)
}

fn finding(r: &Row<'_>) -> Result<(i64, Finding), StoreError> {
    let time = |micros: i64| from_unix_micros(micros).ok_or_else(|| bad_row("time out of range"));
    let status: String = r.get(12)?;
    Ok((
        r.get(0)?,
        Finding {
            id: Uuid::from_slice(&r.get::<_, Vec<u8>>(1)?).map_err(bad_row)?,
            rule_id: r.get(2)?,
            title: r.get(3)?,
            severity: Severity::from_rank(r.get::<_, u8>(4)?).unwrap_or(Severity::Critical),
            group_key: r.get(5)?,
            tags: serde_json::from_str(&r.get::<_, String>(6)?).map_err(bad_row)?,
            facility: r.get(7)?,
            evidence: serde_json::from_str(&r.get::<_, String>(8)?).map_err(bad_row)?,
            first_seen: time(r.get(9)?)?,
            last_seen: time(r.get(10)?)?,
            count: r.get::<_, i64>(11)?.max(0) as u64,
            status: status.parse().map_err(bad_row)?,
            status_by: r.get(13)?,
            status_at: r.get::<_, Option<i64>>(14)?.map(time).transpose()?,
        },
    ))
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

fn bad_row(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("unreadable finding row: {e}"))
}

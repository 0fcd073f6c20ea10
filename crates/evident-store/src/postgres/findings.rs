//! Findings in the PostgreSQL store, and the detection stage's checkpoint.
//!
//! Text the store writes has NUL replaced by U+FFFD (PostgreSQL text cannot hold NUL;
//! a group key may carry one from an event field), the same for the rule id and the
//! group key on both sides of `open_key`, so folding is unaffected.

use super::read::Filter;
use crate::error::StoreError;
use crate::findings::{
    DetectionCheckpoint, EVIDENCE_LIMIT, Finding, FindingCursor, FindingPage, FindingQuery,
    FindingStatus, Hit, StatusChange, extend_evidence, open_key,
};
use crate::query::Scope;
use evident_model::{Severity, from_unix_micros, unix_micros};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};
use uuid::Uuid;

const COLUMNS: &str = "row, id, rule_id, title, severity, group_key, tags, facility, evidence, \
                       first_seen, last_seen, count, status, status_by, status_at";

/// Attempts at folding one hit when status changes keep taking its group meanwhile.
const FOLD_ATTEMPTS: usize = 3;

/// Committed events after `seq`, in order, at most `limit`: `(seq, canonical bytes)`.
pub(super) async fn committed_after(
    client: &Client,
    seq: i64,
    limit: usize,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&seq, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, String>(1)?.into_bytes())))
        .collect()
}

/// The newest committed event's sequence number (0 when there is none).
pub(super) async fn last_seq(client: &Client) -> Result<i64, StoreError> {
    let row = client
        .query_one("SELECT COALESCE(MAX(seq), 0)::BIGINT FROM events", &[])
        .await?;
    Ok(row.try_get(0)?)
}

/// Where detection stopped.
pub(super) async fn checkpoint(client: &Client) -> Result<DetectionCheckpoint, StoreError> {
    let row = client
        .query_one(
            "SELECT done_seq, state_seq, state FROM detection_checkpoint",
            &[],
        )
        .await?;
    let state_seq: Option<i64> = row.try_get(1)?;
    let state: Option<Vec<u8>> = row.try_get(2)?;
    Ok(DetectionCheckpoint {
        done_seq: row.try_get(0)?,
        state: state_seq.zip(state),
    })
}

/// Saves the correlation state as of `seq`.
pub(super) async fn save_state(client: &Client, seq: i64, state: &[u8]) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE detection_checkpoint SET state_seq = $1, state = $2",
            &[&seq, &state],
        )
        .await?;
    Ok(())
}

/// One finding's share of a call: its hits merged.
struct Fold<'a> {
    key: String,
    rule_id: String,
    group_key: String,
    hit: &'a Hit,
    severity: i16,
    first: i64,
    last: i64,
    firings: i64,
    events: Vec<Uuid>,
    /// The finding it went into: row and id.
    into: Option<(i64, Uuid)>,
}

/// Folds `hits` into findings, links their events and moves `done_seq`, in one
/// transaction that this opens and commits on `client`; on error the caller rolls back.
///
/// Three round trips whatever the number of hits: the transaction begins, takes the
/// recorders' lock and reads and locks the unresolved findings of every group in one
/// pipelined exchange; updates and inserts go in a second; links, the checkpoint and the
/// commit in a third. The transaction does not wait for its WAL flush
/// (`synchronous_commit = off`): findings are derived data, and a crash can only lose
/// them together with their `done_seq`, after which the detection stage derives them
/// again from the events. The links newly made are recorded in the log, in the same
/// transaction, by `log` (before the commit, one more exchange).
pub(super) async fn record_hits<F, Fut>(
    client: &deadpool_postgres::ClientWrapper,
    hits: &[Hit],
    done_seq: i64,
    log: F,
) -> Result<Vec<Uuid>, StoreError>
where
    F: FnOnce(Vec<crate::records::Linked>) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let mut folds: Vec<Fold<'_>> = Vec::new();
    let mut fold_of = Vec::with_capacity(hits.len());
    let mut by_key: std::collections::HashMap<String, usize> = Default::default();
    for hit in hits {
        let rule_id = clean(&hit.rule_id);
        let group_key = clean(&hit.group_key);
        let key = open_key(&rule_id, &group_key);
        let (first, last) = (unix_micros(hit.first), unix_micros(hit.last));
        let firings = i64::try_from(hit.firings.max(1)).unwrap_or(i64::MAX);
        let severity = i16::from(hit.severity.rank());
        match by_key.get(&key) {
            Some(&i) => {
                let f = &mut folds[i];
                f.severity = f.severity.max(severity);
                f.first = f.first.min(first);
                f.last = f.last.max(last);
                f.firings = f.firings.saturating_add(firings);
                f.events.extend(hit.events.iter().copied());
                fold_of.push(i);
            }
            None => {
                by_key.insert(key.clone(), folds.len());
                fold_of.push(folds.len());
                folds.push(Fold {
                    key,
                    rule_id,
                    group_key,
                    hit,
                    severity,
                    first,
                    last,
                    firings,
                    events: hit.events.clone(),
                    into: None,
                });
            }
        }
    }
    let room = EVIDENCE_LIMIT as i32;
    let tx = client;
    let select = tx
        .prepare_cached(
            "SELECT open_key, row, id, CASE WHEN cardinality(evidence) < $2 THEN evidence END
               FROM findings WHERE open_key = ANY($1) FOR UPDATE",
        )
        .await?;
    let update = tx
        .prepare_cached(
            "UPDATE findings SET evidence = COALESCE($2, evidence),
                    first_seen = LEAST(first_seen, $3), last_seen = GREATEST(last_seen, $4),
                    count = count + $5, severity = GREATEST(severity, $6)
              WHERE row = $1",
        )
        .await?;
    // Nothing when a status change reopened a finding of the group meanwhile.
    let insert = tx
        .prepare_cached(
            "INSERT INTO findings (id, rule_id, title, severity, group_key, tags, facility,
                    evidence, first_seen, last_seen, count, status, open_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', $12)
             ON CONFLICT (open_key) DO NOTHING
             RETURNING row",
        )
        .await?;
    let link = tx
        .prepare_cached(
            "INSERT INTO finding_events (event_id, finding)
             SELECT * FROM unnest($1::uuid[], $2::int8[])
             ON CONFLICT DO NOTHING RETURNING event_id, finding",
        )
        .await?;
    let done = tx
        .prepare_cached("UPDATE detection_checkpoint SET done_seq = GREATEST(done_seq, $1)")
        .await?;
    // Recorders take turns on the checkpoint row: no two fold the same group at once,
    // and their locks on findings cannot deadlock. Sent together with the first read.
    let begin = tx.batch_execute(
        "BEGIN;
         SET LOCAL synchronous_commit = off;
         SELECT 1 FROM detection_checkpoint FOR UPDATE;",
    );
    let all_keys: Vec<&str> = folds.iter().map(|f| f.key.as_str()).collect();
    let (_, mut first_read) =
        futures_util::future::try_join(begin, tx.query(&select, &[&all_keys, &room])).await?;
    for attempt in 0..FOLD_ATTEMPTS {
        let pending: Vec<usize> = (0..folds.len())
            .filter(|&i| folds[i].into.is_none())
            .collect();
        if pending.is_empty() {
            break;
        }
        let rows = if attempt == 0 {
            std::mem::take(&mut first_read)
        } else {
            tracing::debug!(
                groups = pending.len(),
                "findings changed while recording; again"
            );
            let keys: Vec<&str> = pending.iter().map(|&i| folds[i].key.as_str()).collect();
            tx.query(&select, &[&keys, &room]).await?
        };
        let mut open: std::collections::HashMap<String, (i64, Uuid, Option<Vec<Uuid>>)> = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))))
            .collect::<Result<_, StoreError>>()?;
        let mut updates = Vec::new();
        let mut inserts = Vec::new();
        for &i in &pending {
            let f = &folds[i];
            match open.remove(&f.key) {
                Some((row, id, evidence)) => {
                    let evidence = evidence.map(|mut evidence| {
                        extend_evidence(&mut evidence, &f.events);
                        evidence
                    });
                    updates.push((i, row, id, evidence));
                }
                None => {
                    let mut evidence = Vec::new();
                    extend_evidence(&mut evidence, &f.events);
                    let tags: Vec<String> = f.hit.tags.iter().map(|t| clean(t)).collect();
                    let facility = f.hit.facility.as_deref().map(clean);
                    inserts.push((
                        i,
                        Uuid::now_v7(),
                        evidence,
                        tags,
                        facility,
                        clean(&f.hit.title),
                    ));
                }
            }
        }
        // Pipelined: every statement is sent before the first answer is awaited.
        let (update, insert) = (&update, &insert);
        let folds_now = &folds;
        let updated = futures_util::future::try_join_all(updates.iter().map(
            |(i, row, _, evidence)| async move {
                let f = &folds_now[*i];
                tx.execute(
                    update,
                    &[row, evidence, &f.first, &f.last, &f.firings, &f.severity],
                )
                .await
            },
        ));
        let inserted = futures_util::future::try_join_all(inserts.iter().map(
            |(i, id, evidence, tags, facility, title)| async move {
                let f = &folds_now[*i];
                tx.query_opt(
                    insert,
                    &[
                        id,
                        &f.rule_id,
                        title,
                        &f.severity,
                        &f.group_key,
                        tags,
                        facility,
                        evidence,
                        &f.first,
                        &f.last,
                        &f.firings,
                        &f.key,
                    ],
                )
                .await
            },
        ));
        let (_, rows) = futures_util::future::try_join(updated, inserted).await?;
        for (i, row, id, _) in updates {
            folds[i].into = Some((row, id));
        }
        for ((i, id, ..), row) in inserts.into_iter().zip(rows) {
            if let Some(row) = row {
                folds[i].into = Some((row.try_get(0)?, id));
            }
        }
    }
    let mut linked_events = Vec::new();
    let mut linked_rows = Vec::new();
    let mut touched = Vec::with_capacity(hits.len());
    for f in &folds {
        let Some((row, _)) = f.into else {
            return Err(StoreError::Database(format!(
                "finding of rule {:?} and group {:?} kept changing while recording a hit",
                f.hit.rule_id, f.hit.group_key
            )));
        };
        for event in &f.events {
            linked_events.push(*event);
            linked_rows.push(row);
        }
    }
    for i in fold_of {
        if let Some((_, id)) = folds[i].into {
            touched.push(id);
        }
    }
    let link_params: [&(dyn ToSql + Sync); 2] = [&linked_events, &linked_rows];
    let done_params: [&(dyn ToSql + Sync); 1] = [&done_seq];
    let linked = tx.query(&link, &link_params);
    let checkpoint = tx.execute(&done, &done_params);
    let (linked, _) = futures_util::future::try_join(linked, checkpoint).await?;
    // The new links, by finding, for the log's record of them.
    let mut new: std::collections::BTreeMap<i64, Vec<Uuid>> = Default::default();
    for row in &linked {
        new.entry(row.try_get(1)?)
            .or_default()
            .push(row.try_get(0)?);
    }
    let records: Vec<crate::records::Linked> = folds
        .iter()
        .filter_map(|f| {
            let (row, id) = f.into?;
            let events = new.remove(&row)?;
            Some(crate::records::Linked {
                finding: id,
                rule: f.hit.rule_id.clone(),
                events,
            })
        })
        .collect();
    if !records.is_empty() {
        log(records).await?;
    }
    tx.batch_execute("COMMIT").await?;
    Ok(touched)
}

/// The finding with this id, if it is in `scope`.
pub(super) async fn get(
    client: &Client,
    id: Uuid,
    scope: &Scope,
) -> Result<Option<Finding>, StoreError> {
    let mut f = Filter::default();
    f.add("id = ?", vec![Box::new(id)]);
    f.scope(scope);
    let sql = format!("SELECT {COLUMNS} FROM findings{}", f.sql());
    match client.query_opt(&sql, &f.params()).await? {
        Some(row) => Ok(Some(finding(&row)?.1)),
        None => Ok(None),
    }
}

/// One page of findings matching `q`, newest first.
pub(super) async fn query(client: &Client, q: &FindingQuery) -> Result<FindingPage, StoreError> {
    let mut f = Filter::default();
    if let Some(status) = q.status {
        f.add("status = ?", vec![Box::new(status.as_str())]);
    }
    f.text("rule_id = ?", &q.rule_id);
    if let Some(s) = q.severity {
        f.add("severity = ?", vec![Box::new(i16::from(s.rank()))]);
    }
    if let Some(s) = q.min_severity {
        f.add("severity >= ?", vec![Box::new(i16::from(s.rank()))]);
    }
    f.text("facility = ?", &q.facility);
    if let Some(from) = q.from {
        f.add("last_seen >= ?", vec![Box::new(from)]);
    }
    if let Some(to) = q.to {
        f.add("first_seen < ?", vec![Box::new(to)]);
    }
    if let Some(FindingCursor(row)) = q.cursor {
        f.add("row < ?", vec![Box::new(row)]);
    }
    f.scope(&q.scope);
    f.values
        .push(Box::new(i64::try_from(q.limit).unwrap_or(i64::MAX - 1) + 1));
    let sql = format!(
        "SELECT {COLUMNS} FROM findings{} ORDER BY row DESC LIMIT ${}",
        f.sql(),
        f.values.len()
    );
    let found = client
        .query(&sql, &f.params())
        .await?
        .iter()
        .map(finding)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FindingPage::from_rows(found, q.limit))
}

/// Changes a finding's status; the updated finding, or `None` if it does not exist or
/// is out of `scope`.
pub(super) async fn set_status(
    client: &(impl tokio_postgres::GenericClient + Sync),
    id: Uuid,
    change: &StatusChange,
    scope: &Scope,
) -> Result<Option<Finding>, StoreError> {
    let mut f = Filter::default();
    f.add("id = ?", vec![Box::new(id)]);
    f.scope(scope);
    let n = f.values.len();
    // Resolving frees the rule and group for a new finding; reopening a resolved one
    // takes the key back unless a newer finding holds it (then the unique key refuses).
    let sql = format!(
        "UPDATE findings SET status = ${}, status_by = ${}, status_at = ${},
                open_key = CASE WHEN ${} THEN NULL ELSE rule_id || chr(31) || group_key END{}
          RETURNING {COLUMNS}",
        n + 1,
        n + 2,
        n + 3,
        n + 4,
        f.sql()
    );
    let status = change.status.as_str();
    let by = clean(&change.by);
    let resolved = change.status == FindingStatus::Resolved;
    let mut params = f.params();
    params.extend([&status as &(dyn ToSql + Sync), &by, &change.at, &resolved]);
    let updated = client.query_opt(&sql, &params).await.map_err(|e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Rejected(
                "a newer finding of this rule and group is open; reopen that one instead".into(),
            )
        } else {
            StoreError::from(e)
        }
    })?;
    updated.map(|row| Ok(finding(&row)?.1)).transpose()
}

/// The findings `event` is evidence of, in `scope`, oldest first.
pub(super) async fn for_event(
    client: &Client,
    event: Uuid,
    scope: &Scope,
) -> Result<Vec<Finding>, StoreError> {
    let mut f = Filter::default();
    f.add(
        "row IN (SELECT finding FROM finding_events WHERE event_id = ?)",
        vec![Box::new(event)],
    );
    f.scope(scope);
    let sql = format!("SELECT {COLUMNS} FROM findings{} ORDER BY row", f.sql());
    client
        .query(&sql, &f.params())
        .await?
        .iter()
        .map(|row| Ok(finding(row)?.1))
        .collect()
}

/// A row of [`COLUMNS`]: its row number and the finding.
fn finding(r: &Row) -> Result<(i64, Finding), StoreError> {
    let time = |micros: i64| from_unix_micros(micros).ok_or_else(|| bad_row("time out of range"));
    let status: String = r.try_get(12)?;
    let severity: i16 = r.try_get(4)?;
    Ok((
        r.try_get(0)?,
        Finding {
            id: r.try_get(1)?,
            rule_id: r.try_get(2)?,
            title: r.try_get(3)?,
            severity: Severity::from_rank(u8::try_from(severity).map_err(bad_row)?)
                .unwrap_or(Severity::Critical),
            group_key: r.try_get(5)?,
            tags: r.try_get(6)?,
            facility: r.try_get(7)?,
            evidence: r.try_get(8)?,
            first_seen: time(r.try_get(9)?)?,
            last_seen: time(r.try_get(10)?)?,
            count: r.try_get::<_, i64>(11)?.max(0) as u64,
            status: status.parse().map_err(bad_row)?,
            status_by: r.try_get(13)?,
            status_at: r.try_get::<_, Option<i64>>(14)?.map(time).transpose()?,
        },
    ))
}

/// `s` with NUL, which PostgreSQL text cannot hold, replaced by U+FFFD.
/// `s` with NUL replaced (PostgreSQL text cannot hold it), as the event writer does.
fn clean(s: &str) -> String {
    super::write::strip_nul(s).into_owned()
}

fn bad_row(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("unreadable finding row: {e}"))
}

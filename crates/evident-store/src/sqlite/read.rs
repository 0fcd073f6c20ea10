//! Queries: typed filters → parameterised SQL over the events table.
//!
//! SQL text is assembled only from constant fragments chosen by which filters are set;
//! every value a client sent is bound as a parameter.

use super::term_search;
use crate::error::StoreError;
use crate::query::{
    Bucket, Cursor, EventQuery, GroupCount, GroupField, MAX_GROUPS, Page, Scope, Stats, StatsQuery,
    StoredEvent, TypeFilter, group_sql, prefix_end,
};
use crate::terms;
use evident_model::Severity;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

/// WHERE clauses and their bound values.
#[derive(Default)]
pub(super) struct Filter {
    clauses: Vec<&'static str>,
    pub(super) values: Vec<Sql>,
}

/// One event row of a query's answer.
pub(super) struct Row {
    pub(super) seq: i64,
    pub(super) time: i64,
    pub(super) body: String,
}

impl Filter {
    pub(super) fn add(&mut self, clause: &'static str, values: impl IntoIterator<Item = Sql>) {
        self.clauses.push(clause);
        self.values.extend(values);
    }

    pub(super) fn text(&mut self, clause: &'static str, value: &Option<String>) {
        if let Some(v) = value {
            self.add(clause, [Sql::Text(v.clone())]);
        }
    }

    pub(super) fn scope(&mut self, scope: &Scope) {
        let Some(facilities) = scope else { return };
        // `json_each` over one bound JSON array keeps the SQL text fixed whatever the count.
        let list = serde_json::to_string(facilities).unwrap_or_else(|_| "[]".into());
        self.add(
            "facility IN (SELECT value FROM json_each(?))",
            [Sql::Text(list)],
        );
    }

    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

fn event_filter(q: &EventQuery) -> Filter {
    let mut f = Filter::default();
    match &q.event_type {
        Some(TypeFilter::Exact(t)) => f.add("type = ?", [Sql::Text(t.clone())]),
        Some(TypeFilter::Prefix(p)) => f.add(
            "type >= ? AND type < ?",
            [Sql::Text(p.clone()), Sql::Text(prefix_end(p))],
        ),
        None => {}
    }
    if let Some(c) = q.category {
        f.add("category = ?", [Sql::Text(c.as_str().into())]);
    }
    if let Some(s) = q.severity {
        f.add("severity = ?", [Sql::Integer(s.rank().into())]);
    }
    if let Some(s) = q.min_severity {
        f.add("severity >= ?", [Sql::Integer(s.rank().into())]);
    }
    if let Some(o) = q.outcome {
        f.add("outcome = ?", [Sql::Text(o.as_str().into())]);
    }
    f.text("user_id = ?", &q.user_id);
    f.text("source_ip = ?", &q.source_ip);
    f.text("agent_id = ?", &q.agent_id);
    f.text("source = ?", &q.source);
    f.text("facility = ?", &q.facility);
    f.text("correlation_id = ?", &q.correlation_id);
    if let Some(from) = q.from {
        f.add("time >= ?", [Sql::Integer(from)]);
    }
    if let Some(to) = q.to {
        f.add("time < ?", [Sql::Integer(to)]);
    }
    for d in &q.data {
        let path = format!(
            "$.data{}",
            d.path
                .iter()
                .map(|s| format!(".\"{s}\""))
                .collect::<String>()
        );
        let number = d
            .value
            .parse::<i64>()
            .map(Sql::Integer)
            .or_else(|_| d.value.parse::<f64>().map(Sql::Real));
        let typed = number.unwrap_or_else(|_| Sql::Text(d.value.clone()));
        f.add(
            "json_extract(body, ?) IN (?, ?)",
            [Sql::Text(path), Sql::Text(d.value.clone()), typed],
        );
    }
    if let Some(text) = &q.text {
        f.add(
            "instr(lower(json_extract(body, '$.data.message')), lower(?)) > 0",
            [Sql::Text(text.clone())],
        );
    }
    f.scope(&q.scope);
    f
}

pub(crate) fn query(conn: &Connection, q: &EventQuery) -> Result<Page, StoreError> {
    let mut f = event_filter(q);
    if let Some(c) = q.cursor {
        f.add(
            "(time, seq) < (?, ?)",
            [Sql::Integer(c.time), Sql::Integer(c.seq)],
        );
    }
    let limit = q.limit.max(1);
    let rows = match q.data.first() {
        Some(first) => term_search::newest(conn, q, &f, terms::of_filter(first), limit + 1)?,
        None => newest(conn, &f, limit + 1)?,
    };
    let mut page = Page::default();
    let mut last = None;
    for row in rows {
        if page.events.len() == limit {
            page.next_cursor = last;
            break;
        }
        last = Some(Cursor {
            time: row.time,
            seq: row.seq,
        });
        page.events.push(StoredEvent {
            seq: row.seq,
            bytes: row.body.into_bytes(),
        });
    }
    Ok(page)
}

/// The newest `want` events matching `f`, straight from the filter columns' indexes.
fn newest(conn: &Connection, f: &Filter, want: usize) -> Result<Vec<Row>, StoreError> {
    let sql = format!(
        "SELECT seq, time, body FROM events{} ORDER BY time DESC, seq DESC LIMIT ?",
        f.sql()
    );
    let mut values = f.values.clone();
    values.push(Sql::Integer(want as i64));
    rows(conn, &sql, &values)
}

/// Runs `sql`, which selects `seq, time, body`, with `values` bound.
pub(super) fn rows(conn: &Connection, sql: &str, values: &[Sql]) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(values.iter()), |r| {
        Ok(Row {
            seq: r.get(0)?,
            time: r.get(1)?,
            body: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn get(
    conn: &Connection,
    id: uuid::Uuid,
    scope: &Scope,
) -> Result<Option<StoredEvent>, StoreError> {
    let mut f = Filter::default();
    f.add("id = ?", [Sql::Blob(id.as_bytes().to_vec())]);
    f.scope(scope);
    let sql = format!("SELECT seq, body FROM events{}", f.sql());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(f.values.iter()))?;
    match rows.next()? {
        Some(row) => Ok(Some(StoredEvent {
            seq: row.get(0)?,
            bytes: row.get::<_, String>(1)?.into_bytes(),
        })),
        None => Ok(None),
    }
}

pub(crate) fn stats(conn: &Connection, q: &StatsQuery) -> Result<Stats, StoreError> {
    let mut f = Filter::default();
    f.add(
        "time >= ? AND time < ?",
        [Sql::Integer(q.from), Sql::Integer(q.to)],
    );
    f.scope(&q.scope);
    let mut stats = Stats {
        groups: groups(conn, q, &f)?,
        ..Stats::default()
    };
    let sql = format!(
        "SELECT (time / ?) * ? AS bucket, COUNT(*), SUM(severity = 0), SUM(severity = 1), \
         SUM(severity = 2), SUM(severity = 3), SUM(severity = 4) \
         FROM events{} GROUP BY bucket ORDER BY bucket",
        f.sql()
    );
    let mut values = vec![Sql::Integer(q.interval), Sql::Integer(q.interval)];
    values.extend(f.values.iter().cloned());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(values.iter()))?;
    while let Some(row) = rows.next()? {
        let count: i64 = row.get(1)?;
        stats.total += count as u64;
        let mut by_severity = [0u64; 5];
        for (rank, n) in by_severity.iter_mut().enumerate() {
            *n = row.get::<_, i64>(2 + rank)? as u64;
        }
        stats.series.push(Bucket {
            start: row.get(0)?,
            count: count as u64,
            by_severity,
        });
    }
    Ok(stats)
}

fn groups(conn: &Connection, q: &StatsQuery, f: &Filter) -> Result<Vec<GroupCount>, StoreError> {
    let (select, group) = group_sql(&q.group_by);
    let sql = format!(
        "SELECT {select}COUNT(*) AS n, MIN(time), MAX(time) FROM events{}{group} HAVING n > 0 ORDER BY n DESC LIMIT {MAX_GROUPS}",
        f.sql()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(f.values.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut key = Vec::with_capacity(q.group_by.len());
        for (i, field) in q.group_by.iter().enumerate() {
            key.push(group_value(row, i, *field)?);
        }
        let n = q.group_by.len();
        out.push(GroupCount {
            key,
            count: row.get::<_, i64>(n)? as u64,
            first: row.get(n + 1)?,
            last: row.get(n + 2)?,
        });
    }
    Ok(out)
}

fn group_value(
    row: &rusqlite::Row<'_>,
    i: usize,
    field: GroupField,
) -> Result<Option<String>, StoreError> {
    Ok(match field {
        GroupField::Severity | GroupField::Priority => {
            let rank: Option<u8> = row.get(i)?;
            rank.and_then(Severity::from_rank)
                .map(|s| s.as_str().to_owned())
        }
        _ => row.get(i)?,
    })
}

/// Which of `ids` are stored in the events table.
pub(crate) fn stored_ids(
    conn: &Connection,
    ids: &[uuid::Uuid],
) -> Result<std::collections::HashSet<uuid::Uuid>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM events WHERE id = ?1")?;
    let mut stored = std::collections::HashSet::new();
    for id in ids {
        if stmt.exists([id.as_bytes().as_slice()])? {
            stored.insert(*id);
        }
    }
    Ok(stored)
}

pub(crate) fn fold_target(
    conn: &Connection,
    folded: uuid::Uuid,
) -> Result<Option<uuid::Uuid>, StoreError> {
    let into: Option<Vec<u8>> = conn
        .prepare_cached("SELECT into_id FROM folds WHERE id = ?1")?
        .query_row([folded.as_bytes().as_slice()], |r| r.get(0))
        .optional()?;
    into.map(stored_uuid).transpose()
}

/// A stored id (a 16-byte blob) as a UUID.
pub(crate) fn stored_uuid(bytes: Vec<u8>) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::from_slice(&bytes).map_err(|e| StoreError::Database(format!("stored id: {e}")))
}

pub(crate) fn open_fold_windows(conn: &Connection) -> Result<Vec<uuid::Uuid>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT into_id FROM folds WHERE summarized = 0")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    rows.map(|bytes| stored_uuid(bytes?)).collect()
}

pub(crate) fn dead_letters(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<crate::DeadLetter>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, body, error, failed_at FROM dead_letters ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok(crate::DeadLetter {
            id: r.get(0)?,
            bytes: r.get::<_, String>(1)?.into_bytes(),
            error: r.get(2)?,
            failed_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

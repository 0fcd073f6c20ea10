//! Queries: typed filters → parameterised SQL over the partitioned events table.
//!
//! SQL text is assembled only from constant fragments chosen by which filters are set;
//! every value a client sent is bound as a parameter (`$n`).

use crate::error::StoreError;
use crate::query::{
    Bucket, Cursor, EventQuery, GroupCount, GroupField, MAX_GROUPS, Page, Scope, Stats, StatsQuery,
    StoredEvent, TypeFilter, group_sql,
};
use evident_model::Severity;
use time::OffsetDateTime;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

type Param = Box<dyn ToSql + Sync + Send>;

/// WHERE clauses and their bound values.
#[derive(Default)]
pub(super) struct Filter {
    clauses: Vec<String>,
    pub(super) values: Vec<Param>,
}

impl Filter {
    /// Adds `clause`, whose `?` marks become the next parameter numbers, bound to `values`.
    pub(super) fn add(&mut self, clause: &'static str, values: Vec<Param>) {
        let mut n = self.values.len();
        let mut out = String::with_capacity(clause.len() + 8);
        for ch in clause.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        debug_assert_eq!(n - self.values.len(), values.len());
        self.values.extend(values);
        self.clauses.push(out);
    }

    pub(super) fn text(&mut self, clause: &'static str, value: &Option<String>) {
        if let Some(v) = value {
            self.add(clause, vec![Box::new(v.clone())]);
        }
    }

    pub(super) fn scope(&mut self, scope: &Scope) {
        if let Some(facilities) = scope {
            self.add("facility = ANY(?)", vec![Box::new(facilities.clone())]);
        }
    }

    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A time bound from Unix microseconds (clamped into what PostgreSQL can hold).
pub(crate) fn at(micros: i64) -> OffsetDateTime {
    let nanos = i128::from(micros) * 1_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(if micros < 0 {
        OffsetDateTime::UNIX_EPOCH
    } else {
        time::macros::datetime!(9999-12-31 23:59:59 UTC)
    })
}

/// `time` as Unix microseconds, in SQL.
pub(super) const MICROS: &str = "(extract(epoch FROM time) * 1000000)::bigint";

fn event_filter(q: &EventQuery) -> Filter {
    let mut f = Filter::default();
    match &q.event_type {
        Some(TypeFilter::Exact(t)) => f.add("type = ?", vec![Box::new(t.clone())]),
        Some(TypeFilter::Prefix(p)) => f.add(
            "type >= ? AND type < ?",
            vec![Box::new(p.clone()), Box::new(crate::query::prefix_end(p))],
        ),
        None => {}
    }
    if let Some(c) = q.category {
        f.add("category = ?", vec![Box::new(c.as_str())]);
    }
    if let Some(s) = q.severity {
        f.add("severity = ?", vec![Box::new(i16::from(s.rank()))]);
    }
    if let Some(s) = q.min_severity {
        f.add("severity >= ?", vec![Box::new(i16::from(s.rank()))]);
    }
    if let Some(o) = q.outcome {
        f.add("outcome = ?", vec![Box::new(o.as_str())]);
    }
    f.text("user_id = ?", &q.user_id);
    f.text("source_ip = ?", &q.source_ip);
    f.text("agent_id = ?", &q.agent_id);
    f.text("source = ?", &q.source);
    f.text("facility = ?", &q.facility);
    f.text("correlation_id = ?", &q.correlation_id);
    if let Some(from) = q.from {
        f.add("time >= ?", vec![Box::new(at(from))]);
    }
    if let Some(to) = q.to {
        f.add("time < ?", vec![Box::new(at(to))]);
    }
    for d in &q.data {
        // Containment, which the GIN index answers: the value as text, or as a number
        // when it reads as one (as the embedded store compares).
        let nest = |leaf: serde_json::Value| {
            d.path
                .iter()
                .rev()
                .fold(leaf, |inner, key| serde_json::json!({ key: inner }))
        };
        let as_text = nest(serde_json::Value::String(d.value.clone()));
        let number = d
            .value
            .parse::<i64>()
            .map(serde_json::Value::from)
            .ok()
            .or_else(|| {
                d.value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number)
            });
        match number {
            Some(n) => f.add(
                "(data @> ? OR data @> ?)",
                vec![Box::new(as_text), Box::new(nest(n))],
            ),
            None => f.add("data @> ?", vec![Box::new(as_text)]),
        }
    }
    if let Some(text) = &q.text {
        // ASCII case folding only, as the embedded store's lower() does.
        f.add(
            "strpos(translate(data->>'message', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), translate(?, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')) > 0",
            vec![Box::new(text.clone())],
        );
    }
    f.scope(&q.scope);
    f
}

pub(crate) async fn query(client: &mut Client, q: &EventQuery) -> Result<Page, StoreError> {
    let mut f = event_filter(q);
    if let Some(c) = q.cursor {
        f.add(
            "(time, seq) < (?, ?)",
            vec![Box::new(at(c.time)), Box::new(c.seq)],
        );
    }
    let limit = q.limit.max(1);
    let rows = match q.data.first() {
        Some(first) => {
            let term = crate::terms::of_filter(first);
            super::term_search::newest(client, q, &f, term, limit + 1).await?
        }
        None => {
            f.values.push(Box::new(limit as i64 + 1));
            let sql = format!(
                "SELECT seq, {MICROS}, body FROM events{} ORDER BY time DESC, seq DESC LIMIT ${}",
                f.sql(),
                f.values.len()
            );
            client.query(&sql, &f.params()).await?
        }
    };
    let mut page = Page::default();
    let mut last = None;
    for row in rows {
        if page.events.len() == limit {
            page.next_cursor = last;
            break;
        }
        let seq: i64 = row.get(0);
        last = Some(Cursor {
            time: row.get(1),
            seq,
        });
        page.events.push(StoredEvent {
            seq,
            bytes: row.get::<_, String>(2).into_bytes(),
        });
    }
    Ok(page)
}

pub(crate) async fn get(
    client: &Client,
    id: uuid::Uuid,
    scope: &Scope,
) -> Result<Option<StoredEvent>, StoreError> {
    // The id table says which partition holds the event; the second query then reads
    // only that partition.
    let Some(found) = client
        .query_opt(
            "SELECT time, retention_days FROM event_ids WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let time: OffsetDateTime = found.get(0);
    let days: i32 = found.get(1);
    let mut f = Filter::default();
    f.add(
        "id = ? AND time = ? AND retention_days = ?",
        vec![Box::new(id), Box::new(time), Box::new(days)],
    );
    f.scope(scope);
    let sql = format!("SELECT seq, body FROM events{}", f.sql());
    Ok(client
        .query_opt(&sql, &f.params())
        .await?
        .map(|row| StoredEvent {
            seq: row.get(0),
            bytes: row.get::<_, String>(1).into_bytes(),
        }))
}

pub(crate) async fn stats(client: &Client, q: &StatsQuery) -> Result<Stats, StoreError> {
    let mut f = Filter::default();
    f.add(
        "time >= ? AND time < ?",
        vec![Box::new(at(q.from)), Box::new(at(q.to))],
    );
    f.scope(&q.scope);
    let mut stats = Stats {
        groups: groups(client, q, &f).await?,
        ..Stats::default()
    };
    let n = f.values.len() + 1;
    let sql = format!(
        "SELECT ({MICROS} / ${n}) * ${n} AS bucket, COUNT(*), \
         COUNT(*) FILTER (WHERE severity = 0), COUNT(*) FILTER (WHERE severity = 1), \
         COUNT(*) FILTER (WHERE severity = 2), COUNT(*) FILTER (WHERE severity = 3), \
         COUNT(*) FILTER (WHERE severity = 4) \
         FROM events{} GROUP BY bucket ORDER BY bucket",
        f.sql()
    );
    let mut params = f.params();
    params.push(&q.interval);
    for row in client.query(&sql, &params).await? {
        let count: i64 = row.get(1);
        stats.total += count as u64;
        let mut by_severity = [0u64; 5];
        for (rank, n) in by_severity.iter_mut().enumerate() {
            *n = row.get::<_, i64>(2 + rank) as u64;
        }
        stats.series.push(Bucket {
            start: row.get(0),
            count: count as u64,
            by_severity,
        });
    }
    Ok(stats)
}

async fn groups(
    client: &Client,
    q: &StatsQuery,
    f: &Filter,
) -> Result<Vec<GroupCount>, StoreError> {
    let (select, group) = group_sql(&q.group_by);
    let sql = format!(
        "SELECT {select}COUNT(*) AS n, MIN({MICROS}), MAX({MICROS}) FROM events{}{group} HAVING COUNT(*) > 0 ORDER BY n DESC LIMIT {MAX_GROUPS}",
        f.sql()
    );
    let mut out = Vec::new();
    for row in client.query(&sql, &f.params()).await? {
        let mut key = Vec::with_capacity(q.group_by.len());
        for (i, field) in q.group_by.iter().enumerate() {
            key.push(match field {
                GroupField::Severity | GroupField::Priority => row
                    .get::<_, Option<i16>>(i)
                    .and_then(|r| u8::try_from(r).ok())
                    .and_then(Severity::from_rank)
                    .map(|s| s.as_str().to_owned()),
                _ => row.get::<_, Option<String>>(i),
            });
        }
        let n = q.group_by.len();
        out.push(GroupCount {
            key,
            count: row.get::<_, i64>(n) as u64,
            first: row.get(n + 1),
            last: row.get(n + 2),
        });
    }
    Ok(out)
}

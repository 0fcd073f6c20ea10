//! Monthly partitions per retention class: created ahead of time and on demand, dropped or
//! trimmed when their retention has passed.
//!
//! Removing events keeps the integrity log verifiable: the leaf hash of each removed
//! event of the log moves to `pruned_leaves` in the transaction that removes the event
//! (see `integrity.rs` for how the walk and the proofs use them).
//!
//! `events` is partitioned by list on `retention_days` into `events_r{days}`, each by
//! range on event time into `events_r{days}_{yyyymm}`. DDL cannot take parameters; the
//! names and bounds in it are built only from integers evident computes, never from
//! anything a client sent.

use crate::error::StoreError;
use crate::retention::RetentionReport;
use std::collections::HashSet;
use std::sync::Mutex;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use tokio_postgres::{Client, GenericClient};

/// A partition: retention class (days) and month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PartitionKey {
    pub days: i32,
    pub year: i32,
    pub month: u8,
}

impl PartitionKey {
    /// The partition holding an event of class `days` at `time`.
    pub(crate) fn of(days: i32, time: OffsetDateTime) -> Self {
        let utc = time.to_offset(time::UtcOffset::UTC);
        Self {
            days,
            year: utc.year(),
            month: u8::from(utc.month()),
        }
    }

    fn table(&self) -> String {
        format!("events_r{}_{:04}{:02}", self.days, self.year, self.month)
    }

    fn start(&self) -> OffsetDateTime {
        month_start(self.year, self.month)
    }

    fn end(&self) -> OffsetDateTime {
        if self.month == 12 {
            month_start(self.year + 1, 1)
        } else {
            month_start(self.year, self.month + 1)
        }
    }

    /// The following month's partition of the same class.
    pub(crate) fn next(&self) -> Self {
        let end = self.end();
        Self::of(self.days, end)
    }

    /// Parses a partition table name this module made.
    fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("events_r")?;
        let (days, ym) = rest.split_once('_')?;
        if ym.len() != 6 {
            return None;
        }
        Some(Self {
            days: days.parse().ok()?,
            year: ym[..4].parse().ok()?,
            month: ym[4..].parse().ok()?,
        })
    }
}

fn month_start(year: i32, month: u8) -> OffsetDateTime {
    let month = Month::try_from(month).unwrap_or(Month::January);
    let date = Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN);
    PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc()
}

fn timestamp(t: OffsetDateTime) -> String {
    // RFC 3339 in UTC: a literal PostgreSQL reads unambiguously.
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Partitions known to exist, so the write path asks the catalog only for new months.
#[derive(Default)]
pub(crate) struct Partitions {
    known: Mutex<HashSet<PartitionKey>>,
}

impl Partitions {
    /// Creates whichever of `keys` do not exist yet (each in its own statement).
    pub(crate) async fn ensure(
        &self,
        client: &impl GenericClient,
        keys: impl IntoIterator<Item = PartitionKey>,
    ) -> Result<(), StoreError> {
        let missing: Vec<PartitionKey> = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            let mut missing: Vec<_> = keys.into_iter().filter(|k| !known.contains(k)).collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        for key in missing {
            create(client, key).await?;
            self.known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
        Ok(())
    }

    /// Forgets a dropped partition.
    fn forget(&self, key: &PartitionKey) {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

async fn create(client: &impl GenericClient, key: PartitionKey) -> Result<(), StoreError> {
    let class = format!("events_r{}", key.days);
    let ddl = format!(
        "SET client_min_messages TO warning;
         CREATE TABLE IF NOT EXISTS {class} PARTITION OF events FOR VALUES IN ({days}) PARTITION BY RANGE (time);
         CREATE TABLE IF NOT EXISTS {table} PARTITION OF {class} FOR VALUES FROM ('{from}') TO ('{to}');",
        days = key.days,
        table = key.table(),
        from = timestamp(key.start()),
        to = timestamp(key.end()),
    );
    match client.batch_execute(&ddl).await {
        Ok(()) => Ok(()),
        // Another server created it between our check and our statement.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_TABLE) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Rows deleted per statement when trimming, so no statement holds locks for long.
const TRIM_CHUNK: i64 = 10_000;

/// Key of the advisory lock that serialises dropping partitions and folding the log's
/// start, between servers sharing the database.
pub(super) const RETENTION_LOCK: i64 = 0x6576_6964_656e_7403;

/// Drops every partition whose whole month is past its class's retention, trims expired
/// rows from the partition the cutoff falls in, and removes the ids of what went.
pub(crate) async fn enforce(
    client: &mut Client,
    partitions: &Partitions,
    now: OffsetDateTime,
) -> Result<RetentionReport, StoreError> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent
              WHERE p.relname LIKE 'events\\_r%' AND p.relnamespace = current_schema()::regnamespace",
            &[],
        )
        .await?;
    let mut keys: Vec<PartitionKey> = rows
        .iter()
        .filter_map(|r| PartitionKey::parse(r.get::<_, &str>(0)))
        .collect();
    keys.sort_unstable();
    let mut report = RetentionReport::default();
    for key in keys {
        let cutoff = now - time::Duration::days(key.days.into());
        if key.end() <= cutoff {
            let dropped = drop_partition(client, &key).await?;
            partitions.forget(&key);
            // Also when another server dropped it: its ids may not be gone yet.
            report.removed += trim_ids(client, key.days, key.start(), key.end()).await?;
            if dropped {
                report.dropped_partitions.push(key.table());
            }
        } else if key.start() < cutoff {
            trim(client, &key, cutoff).await?;
            report.removed += trim_ids(client, key.days, key.start(), cutoff).await?;
        }
    }
    Ok(report)
}

/// Drops a partition, keeping the leaf hashes of its events of the log first, in the same
/// transaction; returns false if it was gone already (dropped by another server).
async fn drop_partition(client: &mut Client, key: &PartitionKey) -> Result<bool, StoreError> {
    let table = key.table();
    let tx = client.transaction().await?;
    // One dropper at a time: two would each read the partition, then wait for the other
    // to let go of it to drop it.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RETENTION_LOCK])
        .await?;
    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .get(0);
    if !exists {
        return Ok(false);
    }
    tx.execute(
        &format!(
            "INSERT INTO pruned_leaves (seq, leaf)
             SELECT seq, leaf FROM {table}
              WHERE leaf IS NOT NULL AND seq >= (SELECT log_start FROM commit_seq)
             ON CONFLICT (seq) DO NOTHING"
        ),
        &[],
    )
    .await?;
    tx.batch_execute(&format!("DROP TABLE {table}")).await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes a partition's events from before `cutoff` in chunks, each statement keeping
/// the leaf hashes of the events of the log it deletes.
async fn trim(
    client: &Client,
    key: &PartitionKey,
    cutoff: OffsetDateTime,
) -> Result<(), StoreError> {
    let table = key.table();
    let sql = format!(
        "WITH gone AS (
             DELETE FROM {table}
              WHERE ctid IN (SELECT ctid FROM {table} WHERE time < $1 LIMIT $2)
             RETURNING seq, leaf
         ), kept AS (
             INSERT INTO pruned_leaves (seq, leaf)
             SELECT seq, leaf FROM gone
              WHERE leaf IS NOT NULL AND seq >= (SELECT log_start FROM commit_seq)
             ON CONFLICT (seq) DO NOTHING
         )
         SELECT COUNT(*) FROM gone"
    );
    loop {
        let deleted: i64 = client
            .query_one(&sql, &[&cutoff, &TRIM_CHUNK])
            .await?
            .get(0);
        if deleted < TRIM_CHUNK {
            return Ok(());
        }
    }
}

/// Removes the ids of a class's events in `[from, to)`; returns how many (each id is
/// one stored event, so this counts the events retention removed).
async fn trim_ids(
    client: &Client,
    days: i32,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM event_ids WHERE id IN (SELECT id FROM event_ids
                   WHERE retention_days = $1 AND time >= $2 AND time < $3 LIMIT $4)",
                &[&days, &from, &to, &TRIM_CHUNK],
            )
            .await?;
        total += n;
        if n < TRIM_CHUNK as u64 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn keys_name_and_bound_their_month() {
        let k = PartitionKey::of(30, datetime!(2024-12-31 23:59:59 UTC));
        assert_eq!(k.table(), "events_r30_202412");
        assert_eq!(k.start(), datetime!(2024-12-01 00:00:00 UTC));
        assert_eq!(k.end(), datetime!(2025-01-01 00:00:00 UTC));
        assert_eq!(k.next().table(), "events_r30_202501");
        assert_eq!(PartitionKey::parse("events_r30_202412"), Some(k));
        assert_eq!(PartitionKey::parse("events_r30"), None);
        let shifted = PartitionKey::of(30, datetime!(2025-01-01 01:00:00 +02:00));
        assert_eq!(
            shifted.table(),
            "events_r30_202412",
            "months are UTC months"
        );
    }
}

//! Appending batches: ids first (which makes retries idempotent), then the new events by
//! binary COPY, numbered from the commit sequence, all in one transaction. Each new event
//! is also appended to the integrity log: its leaf hash goes into the COPY, and the log's
//! frontier, read with the commit sequence under its row lock, is written back with it.

use super::partitions::{PartitionKey, Partitions};
use crate::Appended;
use crate::error::StoreError;
use crate::retention::RetentionPolicy;
use evident_integrity::Frontier;
use evident_integrity::merkle::leaf_hash;
use evident_model::EncodedEvent;
use futures_util::pin_mut;
use std::collections::HashSet;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use tokio_postgres::{Client, GenericClient};

const COPY: &str = "COPY events (seq, id, time, received_at, retention_days, type, category,
    severity, priority, outcome, source, agent_id, user_id, source_ip, facility,
    correlation_id, data, body, leaf) FROM STDIN BINARY";

const COPY_TYPES: [Type; 19] = [
    Type::INT8,
    Type::UUID,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::BYTEA,
];

/// Appends `batch` in one transaction (committed, hence flushed, when this returns).
pub(crate) async fn append(
    client: &mut Client,
    partitions: &Partitions,
    policy: &RetentionPolicy,
    batch: &[EncodedEvent],
) -> Result<Vec<Appended>, StoreError> {
    let days: Vec<i32> = batch
        .iter()
        .map(|e| i32::try_from(policy.days_for(&e.event)).unwrap_or(i32::MAX))
        .collect();
    partitions
        .ensure(
            &*client,
            batch
                .iter()
                .zip(&days)
                .map(|(e, d)| PartitionKey::of(*d, e.event.time)),
        )
        .await?;
    let tx = client.transaction().await?;
    let outcomes = insert(&tx, batch, &days).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Inserts `batch` (retention class of each in `days`) inside the transaction open on
/// `tx`.
pub(crate) async fn insert(
    tx: &(impl GenericClient + Sync),
    batch: &[EncodedEvent],
    days: &[i32],
) -> Result<Vec<Appended>, StoreError> {
    // The row lock orders writers: sequence numbers stay gap-free and in commit order,
    // and the integrity log grows in that order.
    let head = tx
        .query_one(
            "SELECT last_seq, log_frontier FROM commit_seq FOR UPDATE",
            &[],
        )
        .await?;
    let last: i64 = head.get(0);
    let mut log = Frontier::from_bytes(head.get(1))
        .map_err(|e| StoreError::Database(format!("integrity log: {e}")))?;
    let ids: Vec<uuid::Uuid> = batch.iter().map(|e| e.event.id).collect();
    let times: Vec<time::OffsetDateTime> = batch.iter().map(|e| e.event.time).collect();
    let new: HashSet<uuid::Uuid> = tx
        .query(
            "INSERT INTO event_ids (id, time, retention_days)
             SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int4[])
             ON CONFLICT (id) DO NOTHING RETURNING id",
            &[&ids, &times, &days],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut taken = HashSet::with_capacity(new.len());
    let mut seq = last;
    let sink = tx.client().copy_in(COPY).await?;
    let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
    pin_mut!(writer);
    for (encoded, days) in batch.iter().zip(days) {
        let e = &encoded.event;
        // The first copy of a new id is stored; a repeat within the batch is a duplicate.
        if !new.contains(&e.id) || !taken.insert(e.id) {
            outcomes.push(Appended::Duplicate);
            continue;
        }
        seq += 1;
        outcomes.push(Appended::Stored(seq));
        let body = std::str::from_utf8(&encoded.bytes)
            .map_err(|err| StoreError::Rejected(format!("event body is not UTF-8: {err}")))?;
        // The canonical body escapes NUL as \u0000: without one, `data` goes as it is.
        let cleaned;
        let data: &(dyn ToSql + Sync) = if body.contains("\\u0000") {
            cleaned = without_nul(serde_json::Value::Object(e.data.clone()));
            &cleaned
        } else {
            &Json(&e.data)
        };
        let severity = i16::from(e.severity.rank());
        let priority = i16::from(e.priority.rank());
        let leaf = leaf_hash(&encoded.bytes);
        log.push(leaf);
        let leaf = leaf.as_slice();
        let row: [&(dyn ToSql + Sync); 19] = [
            &seq,
            &e.id,
            &e.time,
            &e.received_at,
            days,
            &strip_nul(&e.event_type),
            &e.category.as_str(),
            &severity,
            &priority,
            &e.outcome.as_str(),
            &opt_text(&e.source),
            &opt_text(&e.agent_id),
            &opt_text(&e.actor.user_id),
            &opt_text(&e.actor.ip),
            &opt_text(&e.facility),
            &opt_text(&e.correlation_id),
            data,
            &body,
            &leaf,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    tx.execute(
        "UPDATE commit_seq SET last_seq = $1, log_frontier = $2",
        &[&seq, &log.to_bytes()],
    )
    .await?;
    Ok(outcomes)
}

/// PostgreSQL text cannot hold NUL. The filter columns get U+FFFD in its place; the
/// canonical `body` (where NUL is escaped as `\u0000`) keeps the event exactly.
pub(super) fn strip_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}").into()
    } else {
        s.into()
    }
}

fn opt_text(v: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
    v.as_deref().map(strip_nul)
}

/// The same for JSONB, which refuses `\u0000` in strings and keys.
fn without_nul(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "\u{fffd}")),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (strip_nul(&k).into_owned(), without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

//! The integrity log in the PostgreSQL store: signing checkpoints of it, walking it for a
//! verifier, and proving one event is in it.
//!
//! Writers extend the log under the commit sequence's row lock (see `write.rs`), so its
//! order is the seq order. A walk or a proof reads one snapshot (REPEATABLE READ), so the
//! checkpoints it checks against and the events it reads belong together, and reads the
//! events through the index on seq (merged across partitions, never sorted).

use super::PgStore;
use crate::columns::Columns;
use crate::error::StoreError;
use crate::integrity::{LogWalk, PathBuilder};
use crate::{IntegrityLog, LogVerification, Proved};
use evident_integrity::{Checkpoint, EventProof, Frontier, Hash, Signed, Signer};
use std::borrow::Cow;
use std::sync::Arc;
use tokio_postgres::{GenericClient, IsolationLevel, Row, Transaction};

/// Rows fetched from the server at a time while walking the log or reading its leaves.
const FETCH: i32 = 4096;

impl PgStore {
    /// Signs the integrity log's head with `signer` and stores the checkpoint, unless
    /// nothing was committed since the last one (then `None`).
    pub async fn sign_checkpoint(
        &self,
        signer: Arc<Signer>,
        origin: String,
    ) -> Result<Option<Signed>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One signer at a time, so checkpoints grow in size and time together; writers
        // and readers of the log are not held up.
        tx.batch_execute("LOCK TABLE checkpoints IN EXCLUSIVE MODE")
            .await?;
        let row = tx
            .query_one(
                "SELECT log_frontier, (SELECT MAX(size) FROM checkpoints) FROM commit_seq",
                &[],
            )
            .await?;
        let log = Frontier::from_bytes(row.get(0))
            .map_err(|e| StoreError::Database(format!("integrity log: {e}")))?;
        let last: Option<i64> = row.get(1);
        let Some(signed) = crate::integrity::next_checkpoint(&log, last, &signer, origin)? else {
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO checkpoints (size, root, time, origin, key_id, signature)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &i64::try_from(signed.checkpoint.size).unwrap_or(i64::MAX),
                &signed.checkpoint.root.as_slice(),
                &signed.checkpoint.time,
                &signed.checkpoint.origin,
                &signed.key_id,
                &signed.signature.as_slice(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(signed))
    }

    /// The signed checkpoints, smallest first.
    pub async fn checkpoints(&self) -> Result<Vec<Signed>, StoreError> {
        let client = self.client().await?;
        checkpoints(&**client).await
    }

    /// Runs `work` to its end from blocking code (the [`IntegrityLog`] methods), on the
    /// runtime the store was opened on, whose tasks drive its connections. Called on an
    /// async worker thread of a multi-threaded runtime, the worker's other tasks move to
    /// another thread meanwhile; on a single-threaded runtime's own thread it panics, as
    /// any blocking call there would stall the runtime.
    fn block_on<T>(&self, work: impl Future<Output = T>) -> T {
        let runtime = &self.inner.runtime;
        tokio::task::block_in_place(|| runtime.block_on(work))
    }

    async fn verify_log_async(
        &self,
        public: &[u8; 32],
        witness: Option<(u64, Hash)>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<LogVerification, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let (start_seq, last_seq) = log_range(&tx).await?;
        let checkpoints = checkpoints(&tx).await?;
        let expected = u64::try_from(last_seq - start_seq + 1).unwrap_or(0);
        let mut walk = LogWalk::start(
            start_seq,
            Frontier::new(),
            checkpoints,
            expected,
            public,
            witness,
            progress,
        );
        // Rows before the log's start have no place in it on a store whose log began with
        // it: visited, they are reported as inserted. (A store that had events before the
        // log existed keeps those below `log_start`, outside the log.)
        let low = if start_seq <= 1 { i64::MIN } else { start_seq };
        let portal = tx.bind(WALK, &[&low]).await?;
        'walk: loop {
            let rows = tx.query_portal(&portal, FETCH).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let (seq, body, leaf) = walked(row)?;
                if !walk.push(seq, Some(body), leaf) {
                    break 'walk;
                }
            }
        }
        drop(portal);
        tx.rollback().await?;
        walk.finish()
    }

    async fn prove_async(&self, id: uuid::Uuid) -> Result<Option<Proved>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let Some(event) = super::read::get(tx.client(), id, &None).await? else {
            return Ok(None);
        };
        let (seq, body) = (event.seq, event.bytes);
        let (start, _) = log_range(&tx).await?;
        if seq < start {
            return Ok(Some(Proved::OutsideLog(seq)));
        }
        let index = (seq - start) as u64;
        let Some(checkpoint) = checkpoints(&tx).await?.pop() else {
            return Ok(Some(Proved::NotYetSigned(seq)));
        };
        let size = checkpoint.checkpoint.size;
        if size <= index {
            return Ok(Some(Proved::NotYetSigned(seq)));
        }
        let end = start.saturating_add(i64::try_from(size).unwrap_or(i64::MAX));
        let mut path = PathBuilder::new(index, size);
        let portal = tx
            .bind(
                "SELECT seq, leaf FROM events WHERE seq >= $1 AND seq < $2 ORDER BY seq",
                &[&start, &end],
            )
            .await?;
        // The first place where the stored sequence numbers leave the log's order.
        let mut out_of_place = None;
        loop {
            let rows = tx.query_portal(&portal, FETCH).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let expected = start + path.read() as i64;
                if out_of_place.is_none() && row.try_get::<_, i64>(0)? != expected {
                    out_of_place = Some(expected);
                }
                let leaf: Option<&[u8]> = row.try_get(1)?;
                path.push(&leaf.and_then(|l| l.try_into().ok()).unwrap_or([0; 32]));
            }
        }
        drop(portal);
        tx.rollback().await?;
        if let Some(seq) = out_of_place {
            return Err(StoreError::Database(format!(
                "event {seq} of the log is missing or out of place: run evident verify"
            )));
        }
        let read = path.read();
        let path = path.finish().ok_or_else(|| {
            StoreError::Database(format!(
                "the log holds {read} events where its checkpoint signs {size}: run evident verify"
            ))
        })?;
        Ok(Some(Proved::Proof(Box::new(EventProof {
            event: body,
            index,
            checkpoint,
            path,
        }))))
    }
}

/// The log's events from a sequence number on, in seq order, as the walk reads them.
pub(super) const WALK: &str = "SELECT seq, body, leaf, id, time, received_at, type, category,
    severity, priority, outcome, source, agent_id, user_id, source_ip, facility,
    correlation_id FROM events WHERE seq >= $1 ORDER BY seq";

/// A read-only transaction on one snapshot of the store.
pub(super) async fn snapshot(
    client: &mut tokio_postgres::Client,
) -> Result<Transaction<'_>, StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // The walk and the proofs read events in seq order: the index on seq, merged across
    // the partitions, streams them so; a sort of the whole table never may, whatever the
    // planner estimates.
    tx.batch_execute("SET LOCAL enable_sort = off").await?;
    Ok(tx)
}

/// One walked row: its sequence number, stored bytes and recorded leaf hash; the leaf is
/// all zeros (so the event reads as altered) when there is none or the row's query
/// columns disagree with its bytes.
fn walked(row: &Row) -> Result<(i64, &[u8], Hash), StoreError> {
    let seq: i64 = row.try_get(0)?;
    let body: &str = row.try_get(1)?;
    let body = body.as_bytes();
    let leaf: Option<&[u8]> = row.try_get(2)?;
    let mut leaf: Hash = leaf.and_then(|l| l.try_into().ok()).unwrap_or([0; 32]);
    // Queries filter on copies of the body's fields: a copy that disagrees with the
    // bytes is tampering too, reported as the event altered.
    if !columns_agree(row, body)? {
        leaf = [0; 32];
    }
    Ok((seq, body, leaf))
}

/// Whether the row's query columns (from index 3 on, in the walk's column order) say
/// what its body says.
fn columns_agree(row: &Row, body: &[u8]) -> Result<bool, StoreError> {
    let id: uuid::Uuid = row.try_get(3)?;
    let time: time::OffsetDateTime = row.try_get(4)?;
    let received_at: time::OffsetDateTime = row.try_get(5)?;
    let severity: i16 = row.try_get(8)?;
    let priority: i16 = row.try_get(9)?;
    let columns = Columns {
        id: id.as_bytes(),
        time: evident_model::unix_micros(time),
        received_at: evident_model::unix_micros(received_at),
        event_type: row.try_get(6)?,
        category: row.try_get(7)?,
        severity: severity.into(),
        priority: priority.into(),
        outcome: row.try_get(10)?,
        source: row.try_get(11)?,
        agent_id: row.try_get(12)?,
        user_id: row.try_get(13)?,
        source_ip: row.try_get(14)?,
        facility: row.try_get(15)?,
        correlation_id: row.try_get(16)?,
    };
    Ok(crate::columns::agree(
        &columns,
        &nul_as_columns_hold_it(body),
    ))
}

/// `body` with each escaped NUL (`\u0000`) escaping U+FFFD instead: PostgreSQL text
/// cannot hold NUL, so the writer puts U+FFFD in its place in the query columns
/// (`write::strip_nul`), and the columns are compared with the body read the same way.
fn nul_as_columns_hold_it(body: &[u8]) -> Cow<'_, [u8]> {
    const NUL: &[u8] = br"\u0000";
    if !body.windows(NUL.len()).any(|w| w == NUL) {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some((&first, tail)) = rest.split_first() {
        if first != b'\\' {
            out.push(first);
            rest = tail;
            continue;
        }
        // An escape: two bytes, or six for \uXXXX; only \u0000 changes.
        let len = if tail.first() == Some(&b'u') { 6 } else { 2 };
        let (escape, after) = rest.split_at(len.min(rest.len()));
        if escape == NUL {
            out.extend_from_slice(br"\ufffd");
        } else {
            out.extend_from_slice(escape);
        }
        rest = after;
    }
    Cow::Owned(out)
}

/// The log's first sequence number and the last one handed out.
async fn log_range(client: &impl GenericClient) -> Result<(i64, i64), StoreError> {
    let row = client
        .query_one("SELECT log_start, last_seq FROM commit_seq", &[])
        .await?;
    Ok((row.get(0), row.get(1)))
}

async fn checkpoints(client: &impl GenericClient) -> Result<Vec<Signed>, StoreError> {
    let rows = client
        .query(
            "SELECT size, root, time, origin, key_id, signature FROM checkpoints ORDER BY size, time",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let size: i64 = row.try_get(0)?;
        let root: &[u8] = row.try_get(1)?;
        let signature: &[u8] = row.try_get(5)?;
        // A malformed row still becomes a checkpoint: its signature then fails, and the
        // verifier says which.
        out.push(Signed {
            checkpoint: Checkpoint {
                origin: row.try_get(3)?,
                size: size.max(0) as u64,
                root: root.try_into().unwrap_or([0; 32]),
                time: row.try_get(2)?,
            },
            key_id: row.try_get(4)?,
            signature: signature.try_into().unwrap_or([0; 64]),
        });
    }
    Ok(out)
}

impl IntegrityLog for PgStore {
    fn verify_log(
        &self,
        public: &[u8; 32],
        witness: Option<(u64, Hash)>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<LogVerification, StoreError> {
        self.block_on(self.verify_log_async(public, witness, progress))
    }

    fn prove(&self, id: uuid::Uuid) -> Result<Option<Proved>, StoreError> {
        self.block_on(self.prove_async(id))
    }
}

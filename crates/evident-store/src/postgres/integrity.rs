//! The integrity log in the PostgreSQL store: signing checkpoints of it, walking it for a
//! verifier, and proving one event is in it.
//!
//! Writers extend the log under the commit sequence's row lock (see `write.rs`), so its
//! order is the seq order. A walk or a proof reads one snapshot (REPEATABLE READ), so the
//! checkpoints it checks against and the events it reads belong together, and reads the
//! events through the index on seq (merged across partitions, never sorted).
//!
//! Retention removes events (see `partitions.rs`): their leaf hashes are kept in
//! `pruned_leaves` and stand in for them, merged with the events in seq order. A run of
//! removed events at the log's start is folded into a base frontier (`log_base`) once a
//! signed checkpoint of exactly its size vouches for it; the walk and the proofs start
//! from it.

use super::PgStore;
use super::partitions::RETENTION_LOCK;
use crate::columns::Columns;
use crate::error::StoreError;
use crate::integrity::{LogWalk, PathBuilder};
use crate::{IntegrityLog, LogVerification, Proved};
use evident_integrity::{Checkpoint, EventProof, Frontier, Hash, Signed, Signer};
use std::borrow::Cow;
use std::sync::Arc;
use tokio_postgres::{Client, GenericClient, IsolationLevel, Portal, Row, Transaction};

/// Rows fetched from the server at a time while walking the log or reading its leaves.
const FETCH: i32 = 4096;

#[async_trait::async_trait]
impl crate::CheckpointSigner for PgStore {
    async fn sign_checkpoint(
        &self,
        signer: Arc<Signer>,
        origin: String,
    ) -> Result<Option<Signed>, StoreError> {
        PgStore::sign_checkpoint(self, signer, origin).await
    }
}

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
        let head = log_head(&tx).await?;
        let checkpoints = checkpoints(&tx).await?;
        let first = head.first();
        let expected = u64::try_from(head.last_seq - first + 1).unwrap_or(0);
        let start_seq = head.start;
        let mut walk = LogWalk::start(
            start_seq,
            head.base,
            checkpoints,
            expected,
            public,
            witness,
            progress,
        );
        // Rows before `first` have no place in the log: folded away by retention, or, on
        // a store whose log began with it, never there. Visited, they are reported as
        // inserted. (A store that had events before the log existed keeps those below
        // `log_start`, outside the log.)
        let low = if start_seq <= 1 { i64::MIN } else { start_seq };
        let portal = tx.bind(WALK, &[&low]).await?;
        let mut kept = Kept::open(&tx, first, i64::MAX).await?;
        let mut going = true;
        'walk: loop {
            let rows = tx.query_portal(&portal, FETCH).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let (seq, body, leaf) = walked(row)?;
                while let Some((removed, leaf)) = kept.next_before(Some(seq)).await? {
                    if !walk.push(removed, None, leaf) {
                        going = false;
                        break 'walk;
                    }
                }
                if !walk.push(seq, Some(body), leaf) {
                    going = false;
                    break 'walk;
                }
            }
        }
        while going && let Some((removed, leaf)) = kept.next_before(None).await? {
            going = walk.push(removed, None, leaf);
        }
        drop((portal, kept));
        let mut walked = walk.finish()?;
        if let Some(seq) = walked.problem_seq() {
            walked.problem_event = tx
                .query_opt("SELECT id FROM events WHERE seq = $1 LIMIT 1", &[&seq])
                .await?
                .map(|row| row.get(0));
        }
        let pruned = walked.report.pruned > 0 || walked.start_seq > 1;
        walked.beside = beside(&tx).await?.check(pruned, BESIDE_LIMIT);
        tx.rollback().await?;
        Ok(walked)
    }

    async fn prove_async(&self, id: uuid::Uuid) -> Result<Option<Proved>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let Some(event) = super::read::get(tx.client(), id, &None).await? else {
            return Ok(None);
        };
        let (seq, body) = (event.seq, event.bytes);
        let head = log_head(&tx).await?;
        let start = head.start;
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
        let first = head.first();
        // The leaves retention folded are in the base: the path starts from its peaks.
        let mut path = PathBuilder::after_base(index, size, &head.base).ok_or_else(|| {
            StoreError::Database(format!(
                "event {seq} lies where the log's start was removed by retention: run evident verify"
            ))
        })?;
        let portal = tx
            .bind(
                "SELECT seq, leaf FROM events WHERE seq >= $1 AND seq < $2 ORDER BY seq",
                &[&first, &end],
            )
            .await?;
        let mut kept = Kept::open(&tx, first, end).await?;
        // The first place where the sequence numbers read leave the log's order.
        let mut out_of_place = None;
        let mut place = |seq: i64, leaf: &Hash| {
            let expected = start + path.read() as i64;
            if out_of_place.is_none() && seq != expected {
                out_of_place = Some(expected);
            }
            path.push(leaf);
        };
        loop {
            let rows = tx.query_portal(&portal, FETCH).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let seq: i64 = row.try_get(0)?;
                while let Some((removed, leaf)) = kept.next_before(Some(seq)).await? {
                    place(removed, &leaf);
                }
                let leaf: Option<&[u8]> = row.try_get(1)?;
                place(
                    seq,
                    &leaf.and_then(|l| l.try_into().ok()).unwrap_or([0; 32]),
                );
            }
        }
        while let Some((removed, leaf)) = kept.next_before(None).await? {
            place(removed, &leaf);
        }
        drop((portal, kept));
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
    // Before the snapshot is taken (at the first query): a partition being dropped is
    // waited for, so the snapshot sees its events either in it or as their kept hashes,
    // never neither; and none is dropped while the snapshot is read.
    tx.batch_execute("LOCK TABLE events IN ACCESS SHARE MODE")
        .await?;
    // The walk and the proofs read events in seq order: the index on seq, merged across
    // the partitions, streams them so; a sort of the whole table never may, whatever the
    // planner estimates.
    tx.batch_execute("SET LOCAL enable_sort = off").await?;
    Ok(tx)
}

/// The leaf hashes kept for events retention removed, from `pruned_leaves` in seq order,
/// read a chunk at a time beside the events they are merged with.
struct Kept<'t> {
    tx: &'t Transaction<'t>,
    portal: Portal,
    rows: std::collections::VecDeque<(i64, Hash)>,
    done: bool,
}

impl<'t> Kept<'t> {
    /// The kept leaves of sequence numbers `from..to`.
    async fn open(tx: &'t Transaction<'t>, from: i64, to: i64) -> Result<Self, StoreError> {
        let portal = tx
            .bind(
                "SELECT seq, leaf FROM pruned_leaves WHERE seq >= $1 AND seq < $2 ORDER BY seq",
                &[&from, &to],
            )
            .await?;
        Ok(Self {
            tx,
            portal,
            rows: std::collections::VecDeque::new(),
            done: false,
        })
    }

    /// The next kept leaf if its sequence number is below `bound` (any, when `None`). A
    /// kept hash that is not 32 bytes reads as zeros, so it breaks the head it is in.
    async fn next_before(&mut self, bound: Option<i64>) -> Result<Option<(i64, Hash)>, StoreError> {
        if self.rows.is_empty() && !self.done {
            let rows = self.tx.query_portal(&self.portal, FETCH).await?;
            self.done = rows.len() < FETCH as usize;
            for row in &rows {
                let leaf: &[u8] = row.try_get(1)?;
                self.rows
                    .push_back((row.try_get(0)?, leaf.try_into().unwrap_or([0; 32])));
            }
        }
        match self.rows.front() {
            Some(&(seq, _)) if bound.is_none_or(|bound| seq < bound) => Ok(self.rows.pop_front()),
            _ => Ok(None),
        }
    }
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

/// Where the log stands: its first sequence number, the last one handed out, and the
/// frontier standing in for its first events retention folded away.
struct LogHead {
    start: i64,
    last_seq: i64,
    base: Frontier,
}

impl LogHead {
    /// The first sequence number after the base: the walk's first entry.
    fn first(&self) -> i64 {
        self.start
            .saturating_add(i64::try_from(self.base.size()).unwrap_or(i64::MAX))
    }
}

async fn log_head(client: &impl GenericClient) -> Result<LogHead, StoreError> {
    let row = client
        .query_one("SELECT log_start, last_seq, log_base FROM commit_seq", &[])
        .await?;
    Ok(LogHead {
        start: row.try_get(0)?,
        last_seq: row.try_get(1)?,
        base: base_of(row.try_get(2)?)?,
    })
}

/// The base frontier stored as `bytes` (empty when none is).
fn base_of(bytes: Option<&[u8]>) -> Result<Frontier, StoreError> {
    match bytes {
        Some(bytes) => Frontier::from_bytes(bytes)
            .map_err(|e| StoreError::Database(format!("integrity log base: {e}"))),
        None => Ok(Frontier::new()),
    }
}

/// Folds the removed events at the start of the integrity log into its base frontier, up
/// to the largest signed checkpoint they reach and whose head the folded frontier
/// matches: that checkpoint then vouches for the frontier, and their kept leaf hashes can
/// go. Returns how many were folded.
pub(super) async fn fold_log_start(client: &mut Client) -> Result<u64, StoreError> {
    let tx = client.transaction().await?;
    // One fold at a time (only a fold changes the base), and none while a partition is
    // being dropped.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RETENTION_LOCK])
        .await?;
    let row = tx
        .query_one("SELECT log_start, log_base FROM commit_seq", &[])
        .await?;
    let start: i64 = row.try_get(0)?;
    let mut frontier = base_of(row.try_get(1)?)?;
    let folded_size = i64::try_from(frontier.size()).unwrap_or(i64::MAX);
    let first_held = start.saturating_add(folded_size);
    // The removed run at the log's start ends where the first event still held is.
    let next_event: Option<i64> = tx
        .query_one(
            "SELECT MIN(seq) FROM events WHERE seq >= $1",
            &[&first_held],
        )
        .await?
        .try_get(0)?;
    let run_end = next_event.unwrap_or(i64::MAX);
    let Some(target) = tx
        .query_opt(
            "SELECT size, root FROM checkpoints WHERE size > $1 AND size <= $2
             ORDER BY size DESC, time LIMIT 1",
            &[&folded_size, &run_end.saturating_sub(start)],
        )
        .await?
    else {
        return Ok(0);
    };
    let size: i64 = target.try_get(0)?;
    let root: &[u8] = target.try_get(1)?;
    let end = start.saturating_add(size);
    let portal = tx
        .bind(
            "SELECT seq, leaf FROM pruned_leaves WHERE seq >= $1 AND seq < $2 ORDER BY seq",
            &[&first_held, &end],
        )
        .await?;
    let mut expected = first_held;
    loop {
        let rows = tx.query_portal(&portal, FETCH).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seq: i64 = row.try_get(0)?;
            let leaf: &[u8] = row.try_get(1)?;
            let Ok(leaf) = Hash::try_from(leaf) else {
                return Ok(0);
            };
            if seq != expected {
                // A gap in the kept hashes: leave the log as it is for verify to report.
                return Ok(0);
            }
            frontier.push(leaf);
            expected += 1;
        }
    }
    drop(portal);
    // A kept hash that was changed: leave it too, for verify to name its range.
    if expected != end || frontier.root().as_slice() != root {
        return Ok(0);
    }
    tx.execute(
        "UPDATE commit_seq SET log_base = $1",
        &[&frontier.to_bytes()],
    )
    .await?;
    tx.execute(
        "DELETE FROM pruned_leaves WHERE seq >= $1 AND seq < $2",
        &[&first_held, &end],
    )
    .await?;
    tx.commit().await?;
    Ok(u64::try_from(end - first_held).unwrap_or(0))
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

/// Most differences between the side tables and the log's records named in one walk.
const BESIDE_LIMIT: usize = 50;

/// The side tables and the log's records of them, in the walk's snapshot.
async fn beside(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<crate::records::Beside, StoreError> {
    let types: Vec<&str> = evident_model::service::SIDE_RECORDS.to_vec();
    let records = tx
        .query(
            "SELECT body FROM events WHERE type = ANY($1) ORDER BY seq",
            &[&types],
        )
        .await?
        .iter()
        .map(|r| r.try_get::<_, String>(0).map(String::into_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::records::Beside {
        records,
        rows: side_rows(tx).await?,
    })
}

/// What the side tables hold.
pub(super) async fn side_rows(
    tx: &(impl tokio_postgres::GenericClient + Sync),
) -> Result<crate::records::SideRows, StoreError> {
    let [folds, links, statuses] = crate::records::SIDE_ROWS_SQL;
    let folds = tx.query(folds, &[]).await?;
    let links = tx.query(links, &[]).await?;
    let statuses = tx.query(statuses, &[]).await?;
    Ok(crate::records::SideRows {
        folds: folds
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
        links: links
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
        statuses: statuses
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
    })
}

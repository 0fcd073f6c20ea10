//! The integrity log in the embedded store: signing checkpoints of it, and handing its
//! events to a verifier.

use super::SqliteStore;
use crate::columns::Columns;
use crate::error::StoreError;
use crate::integrity::PathBuilder;
use crate::{IntegrityLog, LogVerification, Proved};
use evident_integrity::merkle::leaf_hash;
use evident_integrity::verify::Verifier;
use evident_integrity::{Checkpoint, EventProof, Frontier, Hash, Signed, Signer};
use rusqlite::{Connection, OptionalExtension, params};

/// Bytes of the database the log walk maps into memory at most.
const WALK_MMAP_BYTES: i64 = 2 << 30;

#[async_trait::async_trait]
impl crate::CheckpointSigner for SqliteStore {
    async fn sign_checkpoint(
        &self,
        signer: std::sync::Arc<Signer>,
        origin: String,
    ) -> Result<Option<Signed>, StoreError> {
        SqliteStore::sign_checkpoint(self, signer, origin).await
    }
}

impl SqliteStore {
    /// Signs the integrity log's head with `signer` and stores the checkpoint, unless
    /// nothing was committed since the last one (then `None`).
    pub async fn sign_checkpoint(
        &self,
        signer: std::sync::Arc<Signer>,
        origin: String,
    ) -> Result<Option<Signed>, StoreError> {
        self.with_writer(move |w| {
            let log = w.log().clone();
            let conn = w.conn();
            let last: Option<i64> = conn
                .query_row("SELECT MAX(size) FROM checkpoints", [], |r| r.get(0))
                .optional()?
                .flatten();
            let Some(signed) = crate::integrity::next_checkpoint(&log, last, &signer, origin)?
            else {
                return Ok(None);
            };
            conn.execute(
                "INSERT INTO checkpoints (size, root, time, origin, key_id, signature)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    signed.checkpoint.size as i64,
                    signed.checkpoint.root.as_slice(),
                    signed.checkpoint.time,
                    signed.checkpoint.origin,
                    signed.key_id,
                    signed.signature.as_slice(),
                ],
            )?;
            Ok(Some(signed))
        })
        .await
    }

    /// The signed checkpoints, smallest first.
    pub async fn checkpoints(&self) -> Result<Vec<Signed>, StoreError> {
        self.with_reader(checkpoints).await
    }
}

/// Whether the row's query columns (from index 3 on, in the walk's column order) say
/// what its body says.
fn columns_agree(row: &rusqlite::Row<'_>, body: &[u8]) -> bool {
    let text = |i: usize| {
        row.get_ref(i)
            .ok()
            .and_then(|v| v.as_str_or_null().ok().flatten())
    };
    let int = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_i64().ok());
    let (Some(id), Some(time), Some(received_at), Some(event_type), Some(category)) = (
        row.get_ref(3).ok().and_then(|v| v.as_bytes().ok()),
        int(4),
        int(5),
        text(6),
        text(7),
    ) else {
        return false;
    };
    let (Some(severity), Some(priority), Some(outcome)) = (int(8), int(9), text(10)) else {
        return false;
    };
    let columns = Columns {
        id,
        time,
        received_at,
        event_type,
        category,
        severity,
        priority,
        outcome,
        source: text(11),
        agent_id: text(12),
        user_id: text(13),
        source_ip: text(14),
        facility: text(15),
        correlation_id: text(16),
    };
    crate::columns::agree(&columns, body)
}

/// Log entries a reading thread hands over at once.
const CHUNK: i64 = 32_768;

/// Visits the log's entries with sequence numbers in `range`, in order: each event with
/// its stored bytes and recorded leaf hash (zeroed when its query columns disagree with
/// the bytes, so it reads as altered), each event retention removed (`seq` from
/// `removed_from` on) with no bytes and its kept hash. Returns false if `visit` stopped.
fn walk_range(
    conn: &Connection,
    range: std::ops::Range<i64>,
    removed_from: i64,
    mut visit: impl FnMut(i64, Option<&[u8]>, &Hash),
) -> Result<(), StoreError> {
    let mut pruned_stmt = conn.prepare_cached(
        "SELECT seq, leaf FROM pruned_leaves WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
    )?;
    let mut pruned = pruned_stmt.query_map([range.start.max(removed_from), range.end], |r| {
        let leaf = r
            .get_ref(1)?
            .as_bytes()
            .ok()
            .and_then(|l| l.try_into().ok());
        Ok((r.get::<_, i64>(0)?, leaf.unwrap_or([0u8; 32])))
    })?;
    let mut next_pruned = pruned.next().transpose()?;
    let mut stmt = conn.prepare_cached(
        "SELECT seq, body, leaf, id, time, received_at, type, category, severity, priority,
                outcome, source, agent_id, user_id, source_ip, facility, correlation_id
         FROM events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
    )?;
    let mut rows = stmt.query([range.start, range.end])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        while let Some((removed, leaf)) = next_pruned.filter(|(p, _)| *p < seq) {
            visit(removed, None, &leaf);
            next_pruned = pruned.next().transpose()?;
        }
        // Read in place: no copy, no text check (the hash covers the bytes as stored).
        // A value of another type is no stored event: it hashes as nothing and fails.
        let body = row.get_ref(1)?.as_bytes().unwrap_or_default();
        let mut leaf: Hash = row
            .get_ref(2)?
            .as_bytes()
            .ok()
            .and_then(|l| l.try_into().ok())
            .unwrap_or([0; 32]);
        // Queries filter on copies of the body's fields: a copy that disagrees with the
        // bytes is tampering too, reported as the event altered.
        if !columns_agree(row, body) {
            leaf = [0; 32];
        }
        visit(seq, Some(body), &leaf);
    }
    while let Some((removed, leaf)) = next_pruned {
        visit(removed, None, &leaf);
        next_pruned = pruned.next().transpose()?;
    }
    Ok(())
}

/// One log entry, read and hashed: sequence number, the hash of its stored bytes, the
/// hash recorded for it, and whether retention removed it (then the two are the kept
/// hash).
type Entry = (i64, Hash, Hash, bool);

/// Opens a reader for a walk: the walk reads the table once, in order, so the database
/// is mapped (its pages are then not copied in one system call each; mapped pages are
/// file cache the system can take back).
fn walk_reader(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = super::schema::open_reader(path)?;
    conn.pragma_update(None, "mmap_size", WALK_MMAP_BYTES)?;
    Ok(conn)
}

impl SqliteStore {
    /// The walk behind [`IntegrityLog::verify_log`]. Two threads read alternate chunks of
    /// the log, each checking rows' columns and hashing their bytes where they lie; this
    /// thread takes the chunks in order and rebuilds the tree.
    fn walk(
        &self,
        public: &[u8; 32],
        witness: Option<(u64, Hash)>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<LogVerification, StoreError> {
        let conn = walk_reader(self.db_path())?;
        let start_seq = start_seq(&conn)?;
        let base = base(&conn)?;
        let checkpoints = checkpoints(&conn)?;
        let sizes: Vec<u64> = checkpoints.iter().map(|c| c.checkpoint.size).collect();
        let first = start_seq + base.size() as i64;
        let entries: i64 = conn.query_row(
            "SELECT (SELECT COUNT(*) FROM events WHERE seq >= ?1)
                  + (SELECT COUNT(*) FROM pruned_leaves WHERE seq >= ?1)",
            [first],
            |r| r.get(0),
        )?;
        drop(conn);
        let total = entries.max(0) as u64;
        let mut verifier = Verifier::new(start_seq, checkpoints, public).with_base(base);
        if let Some((size, root)) = witness {
            verifier = verifier.with_witness(size, root);
        }
        // Rows before `first` have no place in the log: folded away by retention, or, on
        // a store whose log began with it, never there. Walked, they are reported as
        // inserted. (A store that had events before the log existed keeps those below
        // `start_seq`, outside the log.)
        let low = if start_seq <= 1 { i64::MIN } else { start_seq };
        // Chunks of CHUNK sequence numbers as a gap-free log would number its entries;
        // the last one is open-ended, so stray rows far beyond land in it.
        let chunks = (entries.max(0) / CHUNK + 1) as usize;
        let range = |k: usize| {
            let from = if k == 0 {
                low
            } else {
                first + k as i64 * CHUNK
            };
            let to = if k + 1 == chunks {
                i64::MAX
            } else {
                first + (k as i64 + 1) * CHUNK
            };
            from..to
        };
        let path = self.db_path().to_owned();
        std::thread::scope(|scope| -> Result<(), StoreError> {
            let mut readers = Vec::new();
            for reader in 0..2usize {
                let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Entry>>(2);
                let path = path.clone();
                let handle = scope.spawn(move || -> Result<(), StoreError> {
                    let conn = walk_reader(&path)?;
                    for k in (reader..chunks).step_by(2) {
                        let mut out = Vec::with_capacity(CHUNK as usize);
                        // One snapshot per chunk: an event retention removes meanwhile
                        // is seen either as itself or as its kept hash.
                        conn.execute_batch("BEGIN")?;
                        walk_range(&conn, range(k), first, |seq, body, recorded| {
                            out.push(match body {
                                Some(body) => (seq, leaf_hash(body), *recorded, false),
                                None => (seq, *recorded, *recorded, true),
                            });
                        })?;
                        conn.execute_batch("COMMIT")?;
                        if send.send(out).is_err() {
                            break;
                        }
                    }
                    Ok(())
                });
                readers.push((receive, handle));
            }
            let mut done = 0u64;
            for k in 0..chunks {
                let Ok(chunk) = readers[k % 2].0.recv() else {
                    break;
                };
                for (seq, computed, recorded, removed) in &chunk {
                    if *removed {
                        verifier.push_pruned(*seq, recorded);
                    } else {
                        verifier.push_hashed(*seq, computed, recorded);
                    }
                }
                done += chunk.len() as u64;
                progress(done.min(total), total);
                if verifier.failed() {
                    break;
                }
            }
            // Hanging up stops the readers at their next chunk.
            let (receivers, handles): (Vec<_>, Vec<_>) = readers.into_iter().unzip();
            drop(receivers);
            for handle in handles {
                handle
                    .join()
                    .map_err(|_| StoreError::Task("a reading thread failed".into()))??;
            }
            Ok(())
        })?;
        progress(total, total);
        let mut walked = LogVerification {
            start_seq,
            checkpoint_sizes: sizes,
            report: verifier.finish(),
            problem_event: None,
            beside: Vec::new(),
        };
        let conn = super::schema::open_reader(self.db_path())?;
        let pruned = walked.report.pruned > 0 || walked.start_seq > 1;
        walked.beside = beside(&conn)?.check(pruned, BESIDE_LIMIT);
        if let Some(seq) = walked.problem_seq() {
            walked.problem_event = conn
                .query_row("SELECT id FROM events WHERE seq = ?1", [seq], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
                .optional()?
                .and_then(|bytes| uuid::Uuid::from_slice(&bytes).ok());
        }
        Ok(walked)
    }
}

/// Most differences between the side tables and the log's records named in one walk.
const BESIDE_LIMIT: usize = 50;

/// The side tables and the log's records of them, read in one snapshot.
fn beside(conn: &Connection) -> Result<crate::records::Beside, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let [a, b, c] = evident_model::service::SIDE_RECORDS;
    let records = tx
        .prepare("SELECT body FROM events WHERE type IN (?1, ?2, ?3) ORDER BY seq")?
        .query_map([a, b, c], |r| r.get::<_, String>(0).map(String::into_bytes))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::records::Beside {
        records,
        rows: side_rows(&tx)?,
    })
}

/// What the side tables hold.
pub(super) fn side_rows(conn: &Connection) -> Result<crate::records::SideRows, StoreError> {
    use super::read::stored_uuid as uuid;
    let [folds, links, statuses] = crate::records::SIDE_ROWS_SQL;
    let mut rows = crate::records::SideRows::default();
    let mut stmt = conn.prepare(folds)?;
    let mut found = stmt.query([])?;
    while let Some(row) = found.next()? {
        rows.folds.push((uuid(row.get(0)?)?, uuid(row.get(1)?)?));
    }
    let mut stmt = conn.prepare(links)?;
    let mut found = stmt.query([])?;
    while let Some(row) = found.next()? {
        rows.links
            .push((uuid(row.get(0)?)?, row.get(1)?, uuid(row.get(2)?)?));
    }
    let mut stmt = conn.prepare(statuses)?;
    let mut found = stmt.query([])?;
    while let Some(row) = found.next()? {
        rows.statuses.push((uuid(row.get(0)?)?, row.get(1)?));
    }
    Ok(rows)
}

fn checkpoints(conn: &Connection) -> Result<Vec<Signed>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT size, root, time, origin, key_id, signature FROM checkpoints ORDER BY size, time",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Vec<u8>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (size, root, time, origin, key_id, signature) = row?;
        // A malformed row still becomes a checkpoint: its signature then fails, and the
        // verifier says which.
        out.push(Signed {
            checkpoint: Checkpoint {
                origin,
                size: size.max(0) as u64,
                root: root.try_into().unwrap_or([0; 32]),
                time,
            },
            key_id,
            signature: signature.try_into().unwrap_or([0; 64]),
        });
    }
    Ok(out)
}

/// The log's first sequence number (1 on a store made with the log).
fn start_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT start_seq FROM integrity_log WHERE one = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(1))
}

/// The frontier standing in for the events retention folded away at the log's start
/// (empty when none were).
fn base(conn: &Connection) -> Result<Frontier, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT base_frontier FROM integrity_log WHERE one = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    match bytes {
        Some(bytes) => Frontier::from_bytes(&bytes)
            .map_err(|e| StoreError::Database(format!("integrity log base: {e}"))),
        None => Ok(Frontier::new()),
    }
}

/// The proof for the event stored at `seq` with `body`: its path in the tree of the
/// newest checkpoint, from the leaf hashes recorded at commit.
fn prove_in(conn: &Connection, seq: i64, body: Vec<u8>) -> Result<Proved, StoreError> {
    let start = start_seq(conn)?;
    if seq < start {
        return Ok(Proved::OutsideLog(seq));
    }
    let index = (seq - start) as u64;
    let Some(checkpoint) = checkpoints(conn)?.pop() else {
        return Ok(Proved::NotYetSigned(seq));
    };
    if checkpoint.checkpoint.size <= index {
        return Ok(Proved::NotYetSigned(seq));
    }
    let base = base(conn)?;
    let size = checkpoint.checkpoint.size;
    let first = start + base.size() as i64;
    let end = start + size as i64;
    // The leaves retention folded are in the base: the path starts from its peaks.
    let mut path = PathBuilder::after_base(index, size, &base).ok_or_else(|| {
        StoreError::Database(format!(
            "event {seq} lies where the log's start was removed by retention: run evident verify"
        ))
    })?;
    // Held events' leaves and removed events' kept ones, merged in sequence order.
    let leaf_of = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, Hash)> {
        let leaf = r
            .get_ref(1)?
            .as_bytes()
            .ok()
            .and_then(|l| l.try_into().ok());
        Ok((r.get(0)?, leaf.unwrap_or([0; 32])))
    };
    let mut held_stmt =
        conn.prepare("SELECT seq, leaf FROM events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq")?;
    let mut held = held_stmt
        .query_map(params![first, end], leaf_of)?
        .peekable();
    let mut kept_stmt = conn
        .prepare("SELECT seq, leaf FROM pruned_leaves WHERE seq >= ?1 AND seq < ?2 ORDER BY seq")?;
    let mut kept = kept_stmt
        .query_map(params![first, end], leaf_of)?
        .peekable();
    loop {
        let take_kept = match (held.peek(), kept.peek()) {
            (Some(Ok((h, _))), Some(Ok((k, _)))) => k < h,
            (None, None) => break,
            (_, Some(_)) => held.peek().is_none(),
            (Some(_), None) => false,
        };
        let (entry_seq, leaf) = if take_kept { kept.next() } else { held.next() }
            .transpose()?
            .unwrap_or_default();
        let expected = start + path.read() as i64;
        if entry_seq != expected {
            return Err(StoreError::Database(format!(
                "event {expected} of the log is missing or out of place: run evident verify"
            )));
        }
        path.push(&leaf);
    }
    let read = path.read();
    let path = path.finish().ok_or_else(|| {
        StoreError::Database(format!(
            "the log holds {read} events where its checkpoint signs {size}: run evident verify"
        ))
    })?;
    Ok(Proved::Proof(Box::new(EventProof {
        event: body,
        index,
        checkpoint,
        path,
    })))
}

impl IntegrityLog for SqliteStore {
    fn prove(&self, id: uuid::Uuid) -> Result<Option<Proved>, StoreError> {
        let conn = super::schema::open_reader(self.db_path())?;
        let row: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT seq, body FROM events WHERE id = ?1",
                [id.as_bytes().as_slice()],
                |r| {
                    let body = r.get_ref(1)?.as_bytes().map(<[u8]>::to_vec);
                    Ok((r.get(0)?, body.unwrap_or_default()))
                },
            )
            .optional()?;
        row.map(|(seq, body)| prove_in(&conn, seq, body))
            .transpose()
    }

    fn verify_log(
        &self,
        public: &[u8; 32],
        witness: Option<(u64, Hash)>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<LogVerification, StoreError> {
        self.walk(public, witness, progress)
    }
}

//! Handing a store's integrity log to a verifier, the parts that do not depend on the
//! backend: the verifying thread a walk feeds, and an inclusion path built from the
//! recorded leaves read in order.

use crate::LogVerification;
use crate::error::StoreError;
use evident_integrity::verify::Verifier;
use evident_integrity::{Checkpoint, Frontier, Hash, Signed, Signer};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

/// Events handed from the reading thread to the verifying one at a time.
const BATCH: usize = 4096;

/// The checkpoint to sign for a log now at `log`, whose largest signed checkpoint so
/// far is `last`: none when nothing was committed since.
pub(crate) fn next_checkpoint(
    log: &Frontier,
    last: Option<i64>,
    signer: &Signer,
    origin: String,
) -> Result<Option<Signed>, StoreError> {
    let size = log.size();
    if size == 0 || last.is_some_and(|l| l.max(0) as u64 >= size) {
        return Ok(None);
    }
    let checkpoint = Checkpoint {
        origin,
        size,
        root: log.root(),
        time: evident_model::unix_micros(time::OffsetDateTime::now_utc()),
    };
    signer
        .sign(checkpoint)
        .map(Some)
        .map_err(|e| StoreError::Database(format!("checkpoint: {e}")))
}

/// Entries of the log handed over at once: sequence number, where the stored bytes are
/// in `bytes` (none for an event retention removed, whose kept leaf hash stands in for
/// it) and recorded leaf hash. The bytes of a batch share one buffer: one copy per
/// event and no allocation.
#[derive(Default)]
struct Batch {
    entries: Vec<(i64, Option<std::ops::Range<usize>>, Hash)>,
    bytes: Vec<u8>,
}

impl Batch {
    fn with_capacity(entries: usize, bytes: usize) -> Self {
        Self {
            entries: Vec::with_capacity(entries),
            bytes: Vec::with_capacity(bytes),
        }
    }
}

/// A walk of a log in progress: the reading side pushes each stored event in sequence
/// order; a thread of its own hashes the bytes, rebuilds the tree and checks it against
/// the checkpoints.
pub(crate) struct LogWalk<'p> {
    start_seq: i64,
    sizes: Vec<u64>,
    total: u64,
    done: u64,
    batch: Batch,
    send: SyncSender<Batch>,
    builder: JoinHandle<Verifier>,
    progress: &'p (dyn Fn(u64, u64) + Sync),
}

impl<'p> LogWalk<'p> {
    /// Starts the walk of the log whose first event is `start_seq`, and whose first
    /// `base.size()` events retention folded into `base`, against `checkpoints` with the
    /// key `public` (and `witness`, if given); `total` is how many entries are expected,
    /// for `progress`.
    pub(crate) fn start(
        start_seq: i64,
        base: Frontier,
        checkpoints: Vec<Signed>,
        total: u64,
        public: &[u8; 32],
        witness: Option<(u64, Hash)>,
        progress: &'p (dyn Fn(u64, u64) + Sync),
    ) -> Self {
        let sizes: Vec<u64> = checkpoints.iter().map(|c| c.checkpoint.size).collect();
        let mut verifier = Verifier::new(start_seq, checkpoints, public).with_base(base);
        if let Some((size, root)) = witness {
            verifier = verifier.with_witness(size, root);
        }
        let (send, receive) = std::sync::mpsc::sync_channel::<Batch>(8);
        let builder = std::thread::spawn(move || {
            for batch in receive {
                for (seq, body, recorded) in batch.entries {
                    match body {
                        Some(range) => verifier.push(seq, &batch.bytes[range], &recorded),
                        None => verifier.push_pruned(seq, &recorded),
                    }
                }
                if verifier.failed() {
                    break;
                }
            }
            verifier
        });
        Self {
            start_seq,
            sizes,
            total,
            done: 0,
            batch: Batch::with_capacity(BATCH, 0),
            send,
            builder,
            progress,
        }
    }

    /// The next entry of the log: its sequence number, stored bytes (none for an event
    /// retention removed) and recorded leaf hash. Returns false once the verifier has
    /// stopped at a problem (the rest need not be read).
    pub(crate) fn push(&mut self, seq: i64, body: Option<&[u8]>, leaf: Hash) -> bool {
        let range = body.map(|body| {
            let start = self.batch.bytes.len();
            self.batch.bytes.extend_from_slice(body);
            start..self.batch.bytes.len()
        });
        self.batch.entries.push((seq, range, leaf));
        if self.batch.entries.len() < BATCH {
            return true;
        }
        self.done += BATCH as u64;
        (self.progress)(self.done, self.total.max(self.done));
        let next = Batch::with_capacity(BATCH, self.batch.bytes.len());
        let full = std::mem::replace(&mut self.batch, next);
        // The verifying thread stops taking batches once it found a problem.
        self.send.send(full).is_ok()
    }

    /// Ends the walk: what verified, and the first problem.
    pub(crate) fn finish(self) -> Result<LogVerification, StoreError> {
        if !self.batch.entries.is_empty() {
            self.send.send(self.batch).ok();
        }
        drop(self.send);
        let done = self.done.max(self.total);
        (self.progress)(done, done);
        let verifier = self
            .builder
            .join()
            .map_err(|_| StoreError::Task("the verifying thread failed".into()))?;
        Ok(LogVerification {
            start_seq: self.start_seq,
            checkpoint_sizes: self.sizes,
            report: verifier.finish(),
            problem_event: None,
            beside: Vec::new(),
        })
    }
}

/// The inclusion path of one leaf, built from the tree's leaf hashes read in order
/// (never all held at once): each hash of the path is the head of a run of leaves, so
/// the leaves of each run go through a frontier of their own.
pub(crate) struct PathBuilder {
    index: u64,
    size: u64,
    /// The runs whose heads make the path, leaf to root.
    runs: Vec<(u64, u64)>,
    /// Positions in `runs`, by where each run starts.
    order: Vec<usize>,
    heads: Vec<Hash>,
    /// Which run of `order` the leaves now read belong to.
    at: usize,
    current: Frontier,
    read: u64,
}

impl PathBuilder {
    /// The path of leaf `index` in the tree of `size` leaves (`index` below `size`).
    pub(crate) fn new(index: u64, size: u64) -> Self {
        let mut runs = Vec::new();
        if index < size {
            path_runs(index, 0, size, &mut runs);
        }
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by_key(|&i| runs[i].0);
        Self {
            index,
            size,
            heads: vec![[0; 32]; runs.len()],
            runs,
            order,
            at: 0,
            current: Frontier::new(),
            read: 0,
        }
    }

    /// The path of leaf `index` in the tree of `size` leaves whose first `base.size()`
    /// leaves retention folded into `base`: the leaves read next are those after the
    /// base. Each run of the path that lies within the base is one of its peaks, and the
    /// run the base ends in starts with its last peaks (the path's runs left of the leaf
    /// are perfect subtrees, each inside one peak or holding whole ones). `None` if the
    /// leaf is inside the base.
    pub(crate) fn after_base(index: u64, size: u64, base: &Frontier) -> Option<Self> {
        let mut builder = Self::new(index, size);
        let folded = base.size();
        if folded == 0 {
            return Some(builder);
        }
        if index < folded || index >= size {
            return None;
        }
        let mut peaks = base.peaks().iter();
        // The peaks of the run now filled, and how many leaves they hold.
        let mut held: Vec<Hash> = Vec::new();
        let mut held_size = 0u64;
        let mut position = 0u64;
        for bit in (0..u64::BITS).rev() {
            let width = 1u64 << bit;
            if folded & width == 0 {
                continue;
            }
            let peak = peaks.next()?;
            while let Some(&run) = builder.order.get(builder.at)
                && position >= builder.runs[run].1
            {
                builder.heads[run] = frontier_of(held_size, &held)?.root();
                held.clear();
                held_size = 0;
                builder.at += 1;
            }
            let &run = builder.order.get(builder.at)?;
            let (from, to) = builder.runs[run];
            if position < from || position + width > to {
                return None;
            }
            held.push(*peak);
            held_size += width;
            position += width;
        }
        builder.current = frontier_of(held_size, &held)?;
        builder.read = folded;
        Some(builder)
    }

    /// The next leaf hash of the tree, in order.
    pub(crate) fn push(&mut self, leaf: &Hash) {
        let position = self.read;
        self.read += 1;
        if position == self.index || position >= self.size {
            return;
        }
        while let Some(&run) = self.order.get(self.at)
            && position >= self.runs[run].1
        {
            self.heads[run] = std::mem::take(&mut self.current).root();
            self.at += 1;
        }
        self.current.push(*leaf);
    }

    /// Leaf hashes read so far.
    pub(crate) fn read(&self) -> u64 {
        self.read
    }

    /// The path, leaf to root; `None` unless exactly `size` leaves were read.
    pub(crate) fn finish(mut self) -> Option<Vec<Hash>> {
        if self.read != self.size || self.index >= self.size {
            return None;
        }
        if let Some(&run) = self.order.get(self.at) {
            self.heads[run] = self.current.root();
        }
        Some(self.heads)
    }
}

/// The frontier of a tree of `size` leaves whose peaks are `peaks`, largest first.
fn frontier_of(size: u64, peaks: &[Hash]) -> Option<Frontier> {
    let mut bytes = Vec::with_capacity(8 + 32 * peaks.len());
    bytes.extend_from_slice(&size.to_be_bytes());
    for peak in peaks {
        bytes.extend_from_slice(peak);
    }
    Frontier::from_bytes(&bytes).ok()
}

/// The runs of leaves whose heads make the path of leaf `index` in the tree over leaves
/// `from..to`, leaf to root (as RFC 6962 splits a tree: at the largest power of two
/// below its size).
fn path_runs(index: u64, from: u64, to: u64, out: &mut Vec<(u64, u64)>) {
    let n = to - from;
    if n <= 1 {
        return;
    }
    let k = 1u64 << (u64::BITS - 1 - (n - 1).leading_zeros());
    if index < from + k {
        path_runs(index, from, from + k, out);
        out.push((from + k, to));
    } else {
        path_runs(index, from + k, to, out);
        out.push((from, from + k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evident_integrity::merkle::{inclusion_proof, leaf_hash};

    #[test]
    fn paths_built_from_streamed_leaves_are_the_inclusion_proofs() {
        for size in 1..=70u64 {
            let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            for index in 0..size {
                let mut builder = PathBuilder::new(index, size);
                for leaf in &leaves {
                    builder.push(leaf);
                }
                assert_eq!(builder.read(), size);
                assert_eq!(
                    builder.finish(),
                    inclusion_proof(&leaves, index as usize),
                    "size {size} index {index}"
                );
            }
            // Too few or too many leaves give no path.
            let mut short = PathBuilder::new(0, size);
            for leaf in &leaves[1..] {
                short.push(leaf);
            }
            assert_eq!(short.finish(), None);
            let mut long = PathBuilder::new(0, size);
            for leaf in leaves.iter().chain(&leaves[..1]) {
                long.push(leaf);
            }
            assert_eq!(long.finish(), None);
        }
    }

    #[test]
    fn paths_built_after_a_folded_base_are_the_inclusion_proofs() {
        for size in 1..=70u64 {
            let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            for folded in 0..=size {
                let mut base = Frontier::new();
                for leaf in &leaves[..folded as usize] {
                    base.push(*leaf);
                }
                for index in 0..size {
                    let Some(mut builder) = PathBuilder::after_base(index, size, &base) else {
                        assert!(index < folded, "size {size} base {folded} index {index}");
                        continue;
                    };
                    assert!(folded == 0 || index >= folded);
                    assert_eq!(builder.read(), folded);
                    for leaf in &leaves[folded as usize..] {
                        builder.push(leaf);
                    }
                    assert_eq!(
                        builder.finish(),
                        inclusion_proof(&leaves, index as usize),
                        "size {size} base {folded} index {index}"
                    );
                }
            }
        }
    }
}

//! Walking a stored log against its signed checkpoints, naming the first thing wrong.
//!
//! The store hands the verifier its events in sequence order, each with the leaf hash
//! it recorded at commit; the verifier recomputes every leaf from the stored bytes,
//! rebuilds the tree, and at each checkpoint's size compares the head with the signed
//! one. So:
//!
//! - an event whose bytes changed is named by its sequence number (its recorded leaf
//!   no longer matches);
//! - a missing event is named by the sequence number that should have come next;
//! - an event rewritten together with its recorded leaf, or events swapped, surface at
//!   the next checkpoint, whose range is named;
//! - events after the last checkpoint are an unverified tail: only chain continuity
//!   protects them, and they are reported as such, never as verified.

use crate::checkpoint::Signed;
use crate::frontier::Frontier;
use crate::merkle::{Hash, leaf_hash};

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The event's stored bytes are not what was committed.
    Altered {
        /// Its sequence number.
        seq: i64,
    },
    /// The event that should come next is missing (removed, or the log truncated
    /// before a checkpoint).
    Missing {
        /// The sequence number expected.
        seq: i64,
    },
    /// An event out of order or doubled (inserted or reordered rows).
    OutOfOrder {
        /// The sequence number found.
        seq: i64,
        /// The one expected.
        expected: i64,
    },
    /// The log's head at a checkpoint differs from the signed one: something in the
    /// range was rewritten consistently (bytes and recorded leaf), reordered, or forged.
    HeadMismatch {
        /// First sequence number of the affected range.
        from_seq: i64,
        /// Last sequence number of the affected range (the checkpoint's).
        to_seq: i64,
    },
    /// A checkpoint whose signature does not hold (altered, forged, or another key).
    BadCheckpoint {
        /// The checkpoint's size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// Checkpoints that do not grow (one replaced by an older or a forged one).
    CheckpointsOutOfOrder {
        /// The size that does not grow.
        size: u64,
    },
    /// The frontier standing in for events removed by retention does not match a signed
    /// checkpoint of that size (altered, or no checkpoint vouches for it).
    BaseMismatch {
        /// Events the frontier stands in for.
        size: u64,
    },
    /// The log no longer matches what an earlier verification saw (its witness): rolled
    /// back, truncated, or rewritten and re-signed.
    WitnessMismatch {
        /// Events the earlier verification covered.
        size: u64,
        /// Events the log holds now, when fewer.
        now: Option<u64>,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Altered { seq } => write!(f, "event {seq} was altered"),
            Problem::Missing { seq } => write!(f, "event {seq} is missing"),
            Problem::OutOfOrder { seq, expected } => {
                write!(
                    f,
                    "event {seq} found where event {expected} belongs (inserted or reordered)"
                )
            }
            Problem::HeadMismatch { from_seq, to_seq } => write!(
                f,
                "events {from_seq}..={to_seq} do not match their signed checkpoint (rewritten, reordered or forged)"
            ),
            Problem::BadCheckpoint { size, reason } => {
                write!(
                    f,
                    "the checkpoint at {size} events does not verify: {reason}"
                )
            }
            Problem::CheckpointsOutOfOrder { size } => {
                write!(
                    f,
                    "the checkpoint at {size} events does not follow the one before"
                )
            }
            Problem::BaseMismatch { size } => write!(
                f,
                "the first {size} events, removed by retention, are not vouched for by a signed checkpoint of that size (the stored frontier was altered)"
            ),
            Problem::WitnessMismatch {
                size,
                now: Some(now),
            } => write!(
                f,
                "the log was rolled back: an earlier verification verified {size} events, now {now} verify"
            ),
            Problem::WitnessMismatch { size, now: None } => write!(
                f,
                "the first {size} events are not those an earlier verification saw (rewritten and re-signed)"
            ),
        }
    }
}

/// What a walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events up to the last checkpoint that matched, all verified.
    pub verified: u64,
    /// Checkpoints whose heads matched.
    pub checkpoints: usize,
    /// Events after the last checkpoint (protected only by chain continuity).
    pub unverified_tail: u64,
    /// Of the verified events, those removed by retention: their recorded hashes stand in
    /// for them (their bytes are gone).
    pub pruned: u64,
    /// The first problem, if any (the walk stops there).
    pub problem: Option<Problem>,
    /// Size and head of the verified part: what the next walk's witness should be.
    pub verified_head: (u64, Hash),
}

/// Walks a log: feed it every stored event in sequence order, then [`Verifier::finish`].
pub struct Verifier {
    start_seq: i64,
    next_seq: i64,
    frontier: Frontier,
    /// Verified checkpoints still ahead, smallest first.
    ahead: std::collections::VecDeque<Signed>,
    checkpoints: usize,
    verified: u64,
    problem: Option<Problem>,
    /// Size and head an earlier verification saw.
    witness: Option<(u64, Hash)>,
    /// Size and head at the last checkpoint that matched.
    verified_head: (u64, Hash),
    /// Events removed by retention walked so far (folded into the base or hash only).
    pruned: u64,
}

impl Verifier {
    /// A walk of the log whose first event has sequence number `start_seq`, against
    /// `checkpoints` (any order), with the service's public key.
    pub fn new(start_seq: i64, mut checkpoints: Vec<Signed>, public: &[u8; 32]) -> Self {
        checkpoints.sort_by_key(|c| (c.checkpoint.size, c.checkpoint.time));
        let mut problem = None;
        let mut last: Option<&Signed> = None;
        for c in &checkpoints {
            if let Err(e) = c.verify(public) {
                problem.get_or_insert(Problem::BadCheckpoint {
                    size: c.checkpoint.size,
                    reason: e.to_string(),
                });
            }
            if let Some(prev) = last
                && (prev.checkpoint.size == c.checkpoint.size
                    && prev.checkpoint.root != c.checkpoint.root
                    || prev.checkpoint.time > c.checkpoint.time)
            {
                problem.get_or_insert(Problem::CheckpointsOutOfOrder {
                    size: c.checkpoint.size,
                });
            }
            last = Some(c);
        }
        Self {
            start_seq,
            next_seq: start_seq,
            frontier: Frontier::new(),
            ahead: checkpoints.into(),
            checkpoints: 0,
            verified: 0,
            problem,
            witness: None,
            verified_head: (0, crate::merkle::empty_root()),
            pruned: 0,
        }
    }

    /// Starts the walk after the log's first `base.size()` events, which retention removed
    /// and folded into `base`: a signed checkpoint of exactly that size must match its
    /// head. Checkpoints of fewer events are then about removed events only; their
    /// signatures were checked, their heads cannot be.
    pub fn with_base(mut self, base: Frontier) -> Self {
        let size = base.size();
        if size == 0 || self.problem.is_some() {
            return self;
        }
        let root = base.root();
        while self.ahead.front().is_some_and(|c| c.checkpoint.size < size) {
            self.ahead.pop_front();
        }
        if !self
            .ahead
            .front()
            .is_some_and(|c| c.checkpoint.size == size && c.checkpoint.root == root)
        {
            self.problem = Some(Problem::BaseMismatch { size });
            return self;
        }
        self.frontier = base;
        self.next_seq = self.start_seq + i64::try_from(size).unwrap_or(i64::MAX);
        self.pruned = size;
        self.check_heads();
        self
    }

    /// Also checks the log against what an earlier verification saw: `size` events with
    /// head `root` (kept outside the store, so a rollback of both the log and its
    /// checkpoints is caught).
    pub fn with_witness(mut self, size: u64, root: Hash) -> Self {
        self.witness = (size > 0).then_some((size, root));
        self
    }

    /// Whether the walk has stopped at a problem.
    pub fn failed(&self) -> bool {
        self.problem.is_some()
    }

    /// The next stored event: its sequence number, stored bytes, and the leaf hash
    /// recorded at commit.
    pub fn push(&mut self, seq: i64, body: &[u8], recorded: &Hash) {
        self.push_hashed(seq, &leaf_hash(body), recorded);
    }

    /// As [`Verifier::push`], with the leaf hash of the stored bytes already computed
    /// (`merkle::leaf_hash`), so the hashing can run on another thread.
    pub fn push_hashed(&mut self, seq: i64, computed: &Hash, recorded: &Hash) {
        if self.problem.is_some() {
            return;
        }
        if seq != self.next_seq {
            self.problem = Some(if seq > self.next_seq {
                Problem::Missing { seq: self.next_seq }
            } else {
                Problem::OutOfOrder {
                    seq,
                    expected: self.next_seq,
                }
            });
            return;
        }
        if computed != recorded {
            self.problem = Some(Problem::Altered { seq });
            return;
        }
        self.frontier.push(*computed);
        self.next_seq += 1;
        if let Some((size, root)) = self.witness
            && self.frontier.size() == size
            && self.frontier.root() != root
        {
            self.problem = Some(Problem::WitnessMismatch { size, now: None });
            return;
        }
        self.check_heads();
    }

    /// The next event of the log, removed by retention: only its recorded leaf hash is
    /// left, and it stands in for the event in the tree.
    pub fn push_pruned(&mut self, seq: i64, recorded: &Hash) {
        self.push_hashed(seq, recorded, recorded);
        if self.problem.is_none() {
            self.pruned += 1;
        }
    }

    fn check_heads(&mut self) {
        while let Some(next) = self.ahead.front() {
            let size = self.frontier.size();
            if next.checkpoint.size > size {
                return;
            }
            let from_seq = self.start_seq + i64::try_from(self.verified).unwrap_or(i64::MAX);
            if next.checkpoint.size < size || next.checkpoint.root != self.frontier.root() {
                let to_seq =
                    self.start_seq + i64::try_from(next.checkpoint.size).unwrap_or(i64::MAX) - 1;
                self.problem = Some(Problem::HeadMismatch {
                    from_seq,
                    to_seq: to_seq.max(from_seq),
                });
                return;
            }
            self.verified = size;
            self.verified_head = (size, next.checkpoint.root);
            self.checkpoints += 1;
            self.ahead.pop_front();
        }
    }

    /// The size and head of what was walked, to keep as the next walk's witness.
    pub fn head(&self) -> (u64, Hash) {
        (self.frontier.size(), self.frontier.root())
    }

    /// Ends the walk.
    pub fn finish(mut self) -> Report {
        if self.problem.is_none() && !self.ahead.is_empty() {
            // A checkpoint beyond the last stored event: the log was cut short.
            self.problem = Some(Problem::Missing { seq: self.next_seq });
        }
        // Fewer events than an earlier walk verified, or fewer verifying (a checkpoint
        // removed): the log or its checkpoints were rolled back.
        if self.problem.is_none()
            && let Some((size, _)) = self.witness
            && self.verified < size
        {
            self.problem = Some(Problem::WitnessMismatch {
                size,
                now: Some(self.verified),
            });
        }
        Report {
            verified_head: self.verified_head,
            verified: self.verified,
            checkpoints: self.checkpoints,
            unverified_tail: self.frontier.size() - self.verified.min(self.frontier.size()),
            pruned: self.pruned.min(self.verified),
            problem: self.problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, Signer};

    /// A log of `n` events from seq 1, with a signed checkpoint every `every` events.
    struct Log {
        rows: Vec<(i64, Vec<u8>, Hash)>,
        checkpoints: Vec<Signed>,
        public: [u8; 32],
    }

    fn log(n: usize, every: usize) -> Log {
        let signer = Signer::generate();
        let mut frontier = Frontier::new();
        let mut rows = Vec::new();
        let mut checkpoints = Vec::new();
        for i in 0..n {
            let body = format!("{{\"seq\":{},\"type\":\"user.login\"}}", i + 1).into_bytes();
            let leaf = leaf_hash(&body);
            frontier.push(leaf);
            rows.push((i as i64 + 1, body, leaf));
            if (i + 1) % every == 0 {
                let c = Checkpoint {
                    origin: "test".into(),
                    size: frontier.size(),
                    root: frontier.root(),
                    time: i as i64,
                };
                checkpoints.push(signer.sign(c).unwrap());
            }
        }
        Log {
            rows,
            checkpoints,
            public: signer.public_key(),
        }
    }

    fn walk(log: &Log) -> Report {
        let mut v = Verifier::new(1, log.checkpoints.clone(), &log.public);
        for (seq, body, leaf) in &log.rows {
            v.push(*seq, body, leaf);
        }
        v.finish()
    }

    #[test]
    fn an_untouched_log_verifies_up_to_its_last_checkpoint() {
        let l = log(105, 10);
        let r = walk(&l);
        assert_eq!(r.problem, None);
        assert_eq!((r.verified, r.checkpoints, r.unverified_tail), (100, 10, 5));
    }

    #[test]
    fn each_tampering_is_named() {
        let base = log(100, 10);
        // A changed byte: that event.
        let mut l = log_clone(&base);
        l.rows[41].1[3] ^= 1;
        assert_eq!(walk(&l).problem, Some(Problem::Altered { seq: 42 }));
        // A changed recorded leaf: that event.
        let mut l = log_clone(&base);
        l.rows[7].2[0] ^= 1;
        assert_eq!(walk(&l).problem, Some(Problem::Altered { seq: 8 }));
        // Bytes and leaf rewritten together: the checkpoint range that holds it.
        let mut l = log_clone(&base);
        l.rows[55].1 = b"{\"forged\":true}".to_vec();
        l.rows[55].2 = leaf_hash(&l.rows[55].1);
        assert_eq!(
            walk(&l).problem,
            Some(Problem::HeadMismatch {
                from_seq: 51,
                to_seq: 60
            })
        );
        // A deleted row: the missing sequence number.
        let mut l = log_clone(&base);
        l.rows.remove(30);
        assert_eq!(walk(&l).problem, Some(Problem::Missing { seq: 31 }));
        // A forged row doubling a sequence number: out of order.
        let mut l = log_clone(&base);
        let forged = (13, b"{\"forged\":1}".to_vec(), leaf_hash(b"{\"forged\":1}"));
        l.rows.insert(13, forged);
        assert_eq!(
            walk(&l).problem,
            Some(Problem::OutOfOrder {
                seq: 13,
                expected: 14
            })
        );
        // Swapped bodies and leaves, sequence numbers kept: the checkpoint range.
        let mut l = log_clone(&base);
        let (a, b) = (l.rows[12].clone(), l.rows[13].clone());
        l.rows[12] = (13, b.1, b.2);
        l.rows[13] = (14, a.1, a.2);
        assert_eq!(
            walk(&l).problem,
            Some(Problem::HeadMismatch {
                from_seq: 11,
                to_seq: 20
            })
        );
        // The tail cut before the last checkpoint.
        let mut l = log_clone(&base);
        l.rows.truncate(95);
        assert_eq!(walk(&l).problem, Some(Problem::Missing { seq: 96 }));
        // A checkpoint replaced: its signature, or its order, fails.
        let mut l = log_clone(&base);
        l.checkpoints[9].checkpoint.root[0] ^= 1;
        assert!(matches!(
            walk(&l).problem,
            Some(Problem::BadCheckpoint { size: 100, .. })
        ));
        // The newest checkpoint replaced by an older one: without a witness of the newest,
        // what follows the older one is reported unverified, never verified.
        let mut l = log_clone(&base);
        l.checkpoints[9] = l.checkpoints[3].clone();
        let r = walk(&l);
        assert_eq!((r.verified, r.unverified_tail, r.problem), (90, 10, None));
        // Signed by another key.
        let other = log(100, 10);
        let mut l = log_clone(&base);
        l.checkpoints[5] = other.checkpoints[5].clone();
        assert!(matches!(
            walk(&l).problem,
            Some(Problem::BadCheckpoint { size: 60, .. })
        ));
    }

    #[test]
    fn a_consistently_rewritten_tail_is_unverified_never_verified() {
        let base = log(100, 30);
        let mut l = log_clone(&base);
        for row in l.rows.iter_mut().skip(90) {
            row.1 = b"{\"rewritten\":1}".to_vec();
            row.2 = leaf_hash(&row.1);
        }
        let r = walk(&l);
        assert_eq!(r.problem, None);
        assert_eq!((r.verified, r.unverified_tail), (90, 10));
    }

    #[test]
    fn a_witness_catches_a_rollback_and_a_re_signed_rewrite() {
        let base = log(100, 10);
        let first = walk(&base);
        let (size, root) = first.verified_head;
        assert_eq!(size, 100);
        let walk_with = |l: &Log| {
            let mut v = Verifier::new(1, l.checkpoints.clone(), &l.public).with_witness(size, root);
            for (seq, body, leaf) in &l.rows {
                v.push(*seq, body, leaf);
            }
            v.finish()
        };
        assert_eq!(walk_with(&base).problem, None);
        // Events and checkpoints rolled back together to 60: consistent on their own.
        let mut l = log_clone(&base);
        l.rows.truncate(60);
        l.checkpoints.truncate(6);
        assert_eq!(
            walk(&l).problem,
            None,
            "without a witness a rollback looks clean"
        );
        assert_eq!(
            walk_with(&l).problem,
            Some(Problem::WitnessMismatch {
                size: 100,
                now: Some(60)
            })
        );
        // Rewritten and re-signed (the key stolen): the witness's head differs.
        let thief = log(100, 10);
        let mut l = log_clone(&thief);
        l.public = thief.public;
        let r = {
            let mut v = Verifier::new(1, l.checkpoints.clone(), &l.public).with_witness(size, root);
            for (i, (seq, _, _)) in base.rows.iter().enumerate() {
                let body = format!("{{\"other\":{i}}}").into_bytes();
                v.push(*seq, &body, &leaf_hash(&body));
            }
            v.finish()
        };
        assert!(
            matches!(
                r.problem,
                Some(Problem::WitnessMismatch {
                    size: 100,
                    now: None
                }) | Some(Problem::HeadMismatch { .. })
            ),
            "{r:?}"
        );
    }

    fn log_clone(l: &Log) -> Log {
        Log {
            rows: l.rows.clone(),
            checkpoints: l.checkpoints.clone(),
            public: l.public,
        }
    }

    /// Walks `l` as a store would after retention removed its first `base` events
    /// (folded into a frontier) and the events whose sequence numbers are in `holes`
    /// (their leaf hashes kept).
    fn walk_pruned(l: &Log, base: usize, holes: &[i64]) -> Report {
        let mut frontier = Frontier::new();
        for (_, _, leaf) in &l.rows[..base] {
            frontier.push(*leaf);
        }
        let mut v = Verifier::new(1, l.checkpoints.clone(), &l.public).with_base(frontier);
        for (seq, body, leaf) in &l.rows[base..] {
            if holes.contains(seq) {
                v.push_pruned(*seq, leaf);
            } else {
                v.push(*seq, body, leaf);
            }
        }
        v.finish()
    }

    #[test]
    fn a_log_verifies_after_retention_from_the_checkpoint_at_its_cut() {
        let l = log(105, 10);
        let r = walk_pruned(&l, 30, &[35, 36, 71]);
        assert_eq!(r.problem, None);
        assert_eq!((r.verified, r.unverified_tail, r.pruned), (100, 5, 33));
        // No checkpoint at the cut: nothing vouches for the frontier.
        let r = walk_pruned(&l, 25, &[]);
        assert_eq!(r.problem, Some(Problem::BaseMismatch { size: 25 }));
        // An altered frontier does not match the checkpoint at its size.
        let mut frontier = Frontier::new();
        for (_, _, leaf) in &l.rows[..29] {
            frontier.push(*leaf);
        }
        frontier.push([7; 32]);
        let v = Verifier::new(1, l.checkpoints.clone(), &l.public).with_base(frontier);
        assert_eq!(v.finish().problem, Some(Problem::BaseMismatch { size: 30 }));
        // A hash kept for a removed event that was changed breaks the head.
        let mut changed = log_clone(&l);
        changed.rows[44].2[0] ^= 1;
        let r = walk_pruned(&changed, 30, &[45]);
        assert_eq!(
            r.problem,
            Some(Problem::HeadMismatch {
                from_seq: 41,
                to_seq: 50
            })
        );
    }
}

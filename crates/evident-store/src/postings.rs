//! Posting lists of data terms, grouped in segments that are written once, in order.
//!
//! A segment covers a contiguous range of commit sequence numbers. For each data term
//! (see [`crate::terms`]) that occurs in the range it holds the term's events, newest
//! first, split into chunks of at most [`CHUNK`] postings so that the newest matches of a
//! common term are read without reading all of them. Segments are built from a buffer of
//! recent postings and merged into larger ones, never updated in place: a store writes
//! each segment's rows at the end of its index, so loading stays sequential however
//! large the store grows (an index of `(term, seq)` rows instead lands every term at a
//! random place and rewrites pages all over it on every commit).

use std::cmp::Reverse;

/// Events per newly written segment; also the most events a data filter scans directly.
#[cfg(not(test))]
pub(crate) const SEGMENT_EVENTS: usize = 4_096;
/// Small in unit tests, so a few hundred events go through every level.
#[cfg(test)]
pub(crate) const SEGMENT_EVENTS: usize = 16;

/// Segments of one level merged into one of the next.
#[cfg(not(test))]
pub(crate) const FANOUT: usize = 8;
#[cfg(test)]
pub(crate) const FANOUT: usize = 4;

/// Segments of this level are not merged further (8² × 4,096, about 262k events each),
/// so no merge holds the writer for long; ten million events make about 40 segments.
pub(crate) const TOP_LEVEL: i64 = 2;

/// Postings per stored chunk.
#[cfg(not(test))]
pub(crate) const CHUNK: usize = 4_096;
/// Small in unit tests, so common terms span several chunks.
#[cfg(test)]
pub(crate) const CHUNK: usize = 8;

/// One event that carries a term: where it sorts (event time, then sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Posting {
    /// Event time, Unix microseconds.
    pub time: i64,
    /// Commit sequence number.
    pub seq: i64,
}

/// A posting list that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("corrupt posting list: {0}")]
pub(crate) struct Corrupt(&'static str);

/// Encodes `list`, sorted newest first, as varint deltas.
pub(crate) fn encode(list: &[Posting]) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.len() * 4 + 10);
    let mut prev: Option<Posting> = None;
    for p in list {
        match prev {
            None => {
                put(&mut out, zigzag(p.time));
                put(&mut out, zigzag(p.seq));
            }
            Some(q) => {
                // Newest first: time never grows, so its delta is never negative.
                put(&mut out, q.time.wrapping_sub(p.time) as u64);
                put(&mut out, zigzag(q.seq.wrapping_sub(p.seq)));
            }
        }
        prev = Some(*p);
    }
    out
}

/// Decodes what [`encode`] wrote.
pub(crate) fn decode(mut bytes: &[u8]) -> Result<Vec<Posting>, Corrupt> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    let mut prev: Option<Posting> = None;
    while !bytes.is_empty() {
        let a = take(&mut bytes)?;
        let b = take(&mut bytes)?;
        let p = match prev {
            None => Posting {
                time: unzigzag(a),
                seq: unzigzag(b),
            },
            Some(q) => Posting {
                time: q.time.wrapping_sub(a as i64),
                seq: q.seq.wrapping_sub(unzigzag(b)),
            },
        };
        out.push(p);
        prev = Some(p);
    }
    Ok(out)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take(bytes: &mut &[u8]) -> Result<u64, Corrupt> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        if i == 10 {
            break;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Ok(v);
        }
    }
    Err(Corrupt("truncated varint"))
}

/// Postings gathered for a segment not yet written: every term of a run of events.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    entries: Vec<(i64, Posting)>,
    /// How many events the buffer covers.
    pub events: usize,
    /// Lowest and highest sequence number covered.
    pub seqs: Option<(i64, i64)>,
    /// Lowest and highest event time covered.
    pub times: Option<(i64, i64)>,
}

impl Buffer {
    /// Adds one event with its terms.
    pub(crate) fn add(&mut self, posting: Posting, terms: impl IntoIterator<Item = i64>) {
        self.entries
            .extend(terms.into_iter().map(|term| (term, posting)));
        self.events += 1;
        self.seqs = Some(match self.seqs {
            None => (posting.seq, posting.seq),
            Some((lo, hi)) => (lo.min(posting.seq), hi.max(posting.seq)),
        });
        self.times = Some(match self.times {
            None => (posting.time, posting.time),
            Some((lo, hi)) => (lo.min(posting.time), hi.max(posting.time)),
        });
    }

    /// Adds postings that already carry their term (from segments being merged).
    pub(crate) fn extend(&mut self, term: i64, postings: &[Posting]) {
        self.entries.extend(postings.iter().map(|p| (term, *p)));
    }

    /// Merges the coverage of another run into this one (for merged segments).
    pub(crate) fn cover(&mut self, events: usize, seqs: (i64, i64), times: (i64, i64)) {
        self.events += events;
        self.seqs = Some(match self.seqs {
            None => seqs,
            Some((lo, hi)) => (lo.min(seqs.0), hi.max(seqs.1)),
        });
        self.times = Some(match self.times {
            None => times,
            Some((lo, hi)) => (lo.min(times.0), hi.max(times.1)),
        });
    }

    /// The segment's rows: `(term, chunk number, encoded postings)`, in key order, each
    /// term's newest postings in chunk 0.
    pub(crate) fn rows(&mut self) -> Vec<(i64, i64, Vec<u8>)> {
        self.entries
            .sort_unstable_by_key(|(t, p)| (*t, Reverse(*p)));
        self.entries.dedup();
        let mut rows = Vec::new();
        let mut list = Vec::new();
        let mut start = 0;
        while start < self.entries.len() {
            let term = self.entries[start].0;
            let end = start
                + self.entries[start..]
                    .iter()
                    .take_while(|(t, _)| *t == term)
                    .count();
            for (n, chunk) in self.entries[start..end].chunks(CHUNK).enumerate() {
                list.clear();
                list.extend(chunk.iter().map(|(_, p)| *p));
                rows.push((term, n as i64, encode(&list)));
            }
            start = end;
        }
        rows
    }
}

/// What [`Merge::next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The next posting, newest first.
    Posting(Posting),
    /// Chunk `chunk` of the term in `segment` is needed: pass it to [`Merge::supply`]
    /// (empty when the segment does not hold the term).
    Load {
        /// Segment id.
        segment: i64,
        /// Chunk number.
        chunk: i64,
    },
    /// No posting is left.
    Done,
}

/// A term's postings in one opened segment, a chunk at a time.
struct Opened {
    segment: i64,
    chunk: i64,
    list: Vec<Posting>,
    pos: usize,
}

/// The newest-first merge of one term's postings over many segments. A segment is
/// opened only once it may hold something newer than every posting in hand, so a
/// query for the newest few matches reads few chunks. It does no I/O: it asks for the
/// chunks it needs ([`Step::Load`]) and the store supplies them.
pub(crate) struct Merge {
    /// Segments not opened yet, `(id, max_time)`, newest `max_time` last.
    unopened: Vec<(i64, i64)>,
    opened: Vec<Opened>,
    heads: std::collections::BinaryHeap<(Posting, usize)>,
    /// The opened list whose next chunk was asked for.
    loading: Option<usize>,
    from: i64,
    to: i64,
    before: Option<Posting>,
}

impl Merge {
    /// A merge over `segments` (`(id, max_time)`) of the postings with
    /// `from <= time < to` that sort before `before`.
    pub(crate) fn new(
        mut segments: Vec<(i64, i64)>,
        from: i64,
        to: i64,
        before: Option<Posting>,
    ) -> Self {
        segments.sort_unstable_by_key(|s| s.1);
        Self {
            unopened: segments,
            opened: Vec::new(),
            heads: std::collections::BinaryHeap::new(),
            loading: None,
            from,
            to,
            before,
        }
    }

    /// The next posting, or the chunk to load before it.
    pub(crate) fn next(&mut self) -> Step {
        loop {
            if let Some(i) = self.loading {
                let list = &self.opened[i];
                return Step::Load {
                    segment: list.segment,
                    chunk: list.chunk,
                };
            }
            if let Some(&(segment, max_time)) = self.unopened.last()
                && self.heads.peek().is_none_or(|(p, _)| p.time <= max_time)
            {
                self.unopened.pop();
                self.opened.push(Opened {
                    segment,
                    chunk: 0,
                    list: Vec::new(),
                    pos: 0,
                });
                self.loading = Some(self.opened.len() - 1);
                continue;
            }
            let Some((p, i)) = self.heads.pop() else {
                return Step::Done;
            };
            // The rest of list `i` is older than `p`, so `p` can go out before any load.
            let list = &mut self.opened[i];
            list.pos += 1;
            if list.pos < list.list.len() {
                self.push_head(i);
            } else if list.list.len() == CHUNK {
                // Only a full chunk may have a next one.
                list.chunk += 1;
                self.loading = Some(i);
            }
            if p.time < self.to && self.before.is_none_or(|b| p < b) {
                return Step::Posting(p);
            }
        }
    }

    /// Supplies the chunk the last [`Step::Load`] asked for.
    pub(crate) fn supply(&mut self, list: Vec<Posting>) {
        let Some(i) = self.loading.take() else {
            return;
        };
        let opened = &mut self.opened[i];
        opened.list = list;
        opened.pos = 0;
        self.push_head(i);
    }

    fn push_head(&mut self, i: usize) {
        let list = &self.opened[i];
        if let Some(p) = list.list.get(list.pos) {
            // Every later posting of the list is older still.
            if p.time >= self.from {
                self.heads.push((*p, i));
            }
        }
    }
}

/// The newest `want` of two newest-first lists, `key` giving each item's `(time, seq)`.
pub(crate) fn merge_newest<T>(
    a: Vec<T>,
    b: Vec<T>,
    want: usize,
    key: impl Fn(&T) -> (i64, i64),
) -> Vec<T> {
    let mut out = Vec::with_capacity(want.min(a.len() + b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while out.len() < want {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => key(x) > key(y),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn posting() -> impl Strategy<Value = Posting> {
        (any::<i64>(), any::<i64>()).prop_map(|(time, seq)| Posting { time, seq })
    }

    proptest! {
        #[test]
        fn encoding_round_trips(mut list in proptest::collection::vec(posting(), 0..200)) {
            list.sort_unstable_by_key(|p| Reverse(*p));
            prop_assert_eq!(decode(&encode(&list)).unwrap(), list);
        }

        #[test]
        fn decoding_garbage_errs_or_returns_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Garbage either fails to decode or decodes to some list, never a panic.
            if let Ok(list) = decode(&bytes) {
                prop_assert_eq!(decode(&encode(&list)).unwrap(), list);
            }
        }

        #[test]
        fn rows_hold_each_terms_postings_newest_first(
            events in proptest::collection::vec((0i64..1_000, proptest::collection::vec(0i64..5, 0..4)), 0..300)
        ) {
            let mut buffer = Buffer::default();
            for (seq, (time, terms)) in events.iter().enumerate() {
                buffer.add(Posting { time: *time, seq: seq as i64 + 1 }, terms.iter().copied());
            }
            let rows = buffer.rows();
            for term in 0..5 {
                let mut want: Vec<Posting> = events
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, terms))| terms.contains(&term))
                    .map(|(seq, (time, _))| Posting { time: *time, seq: seq as i64 + 1 })
                    .collect();
                want.sort_unstable_by_key(|p| Reverse(*p));
                let got: Vec<Posting> = rows
                    .iter()
                    .filter(|(t, _, _)| *t == term)
                    .flat_map(|(_, _, bytes)| decode(bytes).unwrap())
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn common_terms_split_into_chunks_newest_first() {
        let mut buffer = Buffer::default();
        for seq in 1..=(CHUNK as i64 * 2 + 5) {
            buffer.add(
                Posting {
                    time: seq * 10,
                    seq,
                },
                [7],
            );
        }
        let rows = buffer.rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![0, 1, 2]);
        let first = decode(&rows[0].2).unwrap();
        assert_eq!(first.len(), CHUNK);
        assert_eq!(first[0].seq, CHUNK as i64 * 2 + 5);
        assert_eq!(decode(&rows[2].2).unwrap().len(), 5);
    }

    proptest! {
        #[test]
        fn merge_yields_every_posting_in_range_newest_first(
            segments in proptest::collection::vec(proptest::collection::vec((0i64..500, 0i64..10_000), 0..40), 0..6),
            from in 0i64..300, span in 0i64..400, cut in proptest::option::of((0i64..500, 0i64..10_000)),
        ) {
            let to = from + span;
            let before = cut.map(|(time, seq)| Posting { time, seq });
            // Each segment's postings, split into stored chunks as `Buffer::rows` would.
            let mut stored = std::collections::HashMap::new();
            let mut ids = Vec::new();
            let mut all = Vec::new();
            for (id, list) in segments.iter().enumerate() {
                let mut list: Vec<Posting> = list.iter().map(|&(time, seq)| Posting { time, seq: seq * 10 + id as i64 }).collect();
                list.sort_unstable_by_key(|p| Reverse(*p));
                list.dedup();
                all.extend(list.iter().copied());
                if let Some(max) = list.first() {
                    ids.push((id as i64, max.time));
                }
                for (n, chunk) in list.chunks(CHUNK).enumerate() {
                    stored.insert((id as i64, n as i64), chunk.to_vec());
                }
            }
            let mut want: Vec<Posting> = all
                .into_iter()
                .filter(|p| from <= p.time && p.time < to && before.is_none_or(|b| *p < b))
                .collect();
            want.sort_unstable_by_key(|p| Reverse(*p));
            let mut merge = Merge::new(ids, from, to, before);
            let mut got = Vec::new();
            loop {
                match merge.next() {
                    Step::Posting(p) => got.push(p),
                    Step::Load { segment, chunk } => {
                        merge.supply(stored.get(&(segment, chunk)).cloned().unwrap_or_default())
                    }
                    Step::Done => break,
                }
            }
            prop_assert_eq!(got, want);
        }
    }
}

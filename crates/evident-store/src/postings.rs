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

    /// The segment's rows. A term with more than [`PACK_AT_MOST`] postings gets rows of
    /// its own, `(term, chunk number, encoded postings)`, its newest postings in chunk 0.
    /// Rarer terms (most of them: ids, timestamps and other one-off values) are packed
    /// together, about [`PACK_PER_ROW`] to a row keyed `(pack_key(term, bits), PACKED)`,
    /// which keeps the index a fraction of the size one row per term would make.
    pub(crate) fn rows(&mut self) -> SegmentRows {
        self.entries
            .sort_unstable_by_key(|(t, p)| (*t, Reverse(*p)));
        self.entries.dedup();
        let mut terms: Vec<(i64, &[(i64, Posting)])> = Vec::new();
        let mut start = 0;
        while start < self.entries.len() {
            let term = self.entries[start].0;
            let n = self.entries[start..]
                .iter()
                .take_while(|(t, _)| *t == term)
                .count();
            terms.push((term, &self.entries[start..start + n]));
            start += n;
        }
        let packed = terms
            .iter()
            .filter(|(_, e)| e.len() <= PACK_AT_MOST)
            .count();
        let bits = pack_bits(packed);
        let mut rows = Vec::new();
        let mut packs: std::collections::BTreeMap<i64, Vec<u8>> = Default::default();
        let mut list = Vec::new();
        for (term, entries) in terms {
            list.clear();
            list.extend(entries.iter().map(|(_, p)| *p));
            if entries.len() <= PACK_AT_MOST {
                let bytes = encode(&list);
                let pack = packs.entry(pack_key(term, bits)).or_default();
                pack.extend_from_slice(&term.to_le_bytes());
                put(pack, bytes.len() as u64);
                pack.extend_from_slice(&bytes);
                continue;
            }
            for (n, chunk) in list.chunks(CHUNK).enumerate() {
                rows.push((term, n as i64, encode(chunk)));
            }
        }
        rows.extend(packs.into_iter().map(|(key, bytes)| (key, PACKED, bytes)));
        SegmentRows { bits, rows }
    }
}

/// Chunk number of the rows that pack a segment's rare terms together.
pub(crate) const PACKED: i64 = -1;

/// Terms with at most this many postings in a segment are packed.
const PACK_AT_MOST: usize = 2;

/// Packed terms per row aimed at.
const PACK_PER_ROW: usize = 64;

/// A segment's rows and how its packed rows are keyed.
pub(crate) struct SegmentRows {
    /// Bits of a term that key its packed row (see [`pack_key`]).
    pub bits: u32,
    /// `(term or pack key, chunk number or PACKED, bytes)`.
    pub rows: Vec<(i64, i64, Vec<u8>)>,
}

/// Key bits for `packed` terms at about [`PACK_PER_ROW`] to a row.
fn pack_bits(packed: usize) -> u32 {
    let rows = packed.div_ceil(PACK_PER_ROW).max(1);
    rows.next_power_of_two().trailing_zeros().min(24)
}

/// The key of the packed row `term` would be in: its top `bits` bits.
pub(crate) fn pack_key(term: i64, bits: u32) -> i64 {
    if bits == 0 { 0 } else { term >> (64 - bits) }
}

/// The entries of a packed row: each term with its postings.
pub(crate) fn unpack(mut bytes: &[u8]) -> Result<Vec<(i64, Vec<Posting>)>, Corrupt> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (term, list) = next_packed(&mut bytes)?;
        out.push((term, decode(list)?));
    }
    Ok(out)
}

/// The postings of `term` in a packed row (none if it is not there).
pub(crate) fn find_packed(mut bytes: &[u8], term: i64) -> Result<Vec<Posting>, Corrupt> {
    while !bytes.is_empty() {
        let (t, list) = next_packed(&mut bytes)?;
        if t == term {
            return decode(list);
        }
    }
    Ok(Vec::new())
}

fn next_packed<'a>(bytes: &mut &'a [u8]) -> Result<(i64, &'a [u8]), Corrupt> {
    let Some((term, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(Corrupt("truncated packed term"));
    };
    let mut rest = rest;
    let len = take(&mut rest)? as usize;
    if len > rest.len() {
        return Err(Corrupt("truncated packed postings"));
    }
    let (list, after) = rest.split_at(len);
    *bytes = after;
    Ok((i64::from_le_bytes(*term), list))
}

/// The postings of a term in one chunk, from the chunk's own row or, for chunk 0, the
/// packed row the term would be in; either may be missing.
pub(crate) fn chunk_of(
    term: i64,
    own: Option<&[u8]>,
    packed: Option<&[u8]>,
) -> Result<Vec<Posting>, Corrupt> {
    match (own, packed) {
        (Some(bytes), _) => decode(bytes),
        (None, Some(bytes)) => find_packed(bytes, term),
        (None, None) => Ok(Vec::new()),
    }
}

/// Every `(term, postings)` of one stored row, packed or not (for merging segments).
pub(crate) fn row_entries(
    key: i64,
    chunk: i64,
    bytes: &[u8],
) -> Result<Vec<(i64, Vec<Posting>)>, Corrupt> {
    if chunk == PACKED {
        unpack(bytes)
    } else {
        Ok(vec![(key, decode(bytes)?)])
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

/// The part of the posting order a query reads: `from <= time < to`, before `before`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Lowest event time, inclusive.
    pub from: i64,
    /// Highest event time, exclusive.
    pub to: i64,
    /// Only postings that sort before this one (a page cursor).
    pub before: Option<Posting>,
}

impl Bounds {
    /// The bounds of `q`'s time range and cursor.
    pub(crate) fn of(q: &crate::query::EventQuery) -> Self {
        Self {
            from: q.from.unwrap_or(i64::MIN),
            to: q.to.unwrap_or(i64::MAX),
            before: q.cursor.map(|c| Posting {
                time: c.time,
                seq: c.seq,
            }),
        }
    }

    /// The `[from, newest)` range of event times a segment must overlap to matter.
    pub(crate) fn times(&self) -> (i64, i64) {
        let newest = self
            .before
            .map_or(self.to, |c| self.to.min(c.time.saturating_add(1)));
        (self.from, newest)
    }
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
    /// A merge over `segments` (`(id, max_time)`) of the postings within `bounds`.
    pub(crate) fn new(mut segments: Vec<(i64, i64)>, bounds: Bounds) -> Self {
        segments.sort_unstable_by_key(|s| s.1);
        Self {
            unopened: segments,
            opened: Vec::new(),
            heads: std::collections::BinaryHeap::new(),
            loading: None,
            from: bounds.from,
            to: bounds.to,
            before: bounds.before,
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

    #[test]
    fn rare_terms_are_packed_and_found_in_their_row() {
        let mut buffer = Buffer::default();
        let rare = |seq: i64| seq.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64);
        for seq in 1..=1_000 {
            buffer.add(Posting { time: seq, seq }, [7, rare(seq)]);
        }
        let SegmentRows { bits, rows } = buffer.rows();
        assert_eq!(bits, 4, "1,000 rare terms at about 64 a row");
        let packed: std::collections::HashMap<i64, &[u8]> = rows
            .iter()
            .filter(|r| r.1 == PACKED)
            .map(|r| (r.0, r.2.as_slice()))
            .collect();
        assert!(
            packed.len() <= 16 && packed.len() > 8,
            "{} packed rows",
            packed.len()
        );
        assert_eq!(
            rows.iter().filter(|r| r.0 == 7 && r.1 >= 0).count(),
            1000usize.div_ceil(CHUNK)
        );
        for seq in 1..=1_000 {
            let term = rare(seq);
            let row = packed.get(&pack_key(term, bits)).copied();
            assert_eq!(
                chunk_of(term, None, row).unwrap(),
                vec![Posting { time: seq, seq }]
            );
        }
        let absent = packed.get(&pack_key(12345, bits)).copied();
        assert!(chunk_of(12345, None, absent).unwrap().is_empty());
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
            let rows = buffer.rows().rows;
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
                    .flat_map(|(key, chunk, bytes)| row_entries(*key, *chunk, bytes).unwrap())
                    .filter(|(t, _)| *t == term)
                    .flat_map(|(_, list)| list)
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
        let rows = buffer.rows().rows;
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
            let mut merge = Merge::new(ids, Bounds { from, to, before });
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

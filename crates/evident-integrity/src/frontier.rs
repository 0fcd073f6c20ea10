//! The compact frontier of a growing Merkle tree: the roots of the perfect subtrees its
//! size decomposes into (one per set bit, largest first). Appending a leaf and taking
//! the tree head both cost O(log n) hashes, so a store can extend its log at every
//! commit and sign heads often without rereading what it holds.

use crate::merkle::{Hash, empty_root, node_hash};

/// A tree's frontier: enough to append to it and to compute its head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Perfect subtree roots, largest (leftmost) first: one per set bit of `size`.
    peaks: Vec<Hash>,
}

/// Bytes that are not a frontier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Merkle frontier: {0}")]
pub struct BadFrontier(&'static str);

impl Frontier {
    /// The empty tree's frontier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree roots the size decomposes into, largest (leftmost) first: one
    /// per set bit of the size.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.peaks.push(leaf);
        // Each trailing one bit of the old size is a subtree the new leaf completes.
        let mut merges = self.size.trailing_ones();
        while merges > 0 {
            let right = self.peaks.pop();
            let left = self.peaks.pop();
            if let (Some(left), Some(right)) = (left, right) {
                self.peaks.push(node_hash(&left, &right));
            }
            merges -= 1;
        }
        self.size += 1;
    }

    /// The tree head (RFC 6962 root) of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The frontier as bytes: the size (8 bytes, big-endian), then each peak.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.peaks.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for peak in &self.peaks {
            out.extend_from_slice(peak);
        }
        out
    }

    /// Reads bytes made by [`Frontier::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BadFrontier> {
        let (size, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or(BadFrontier("shorter than its size"))?;
        let size = u64::from_be_bytes(*size);
        if rest.len() != 32 * size.count_ones() as usize {
            return Err(BadFrontier("the number of peaks does not match the size"));
        }
        let peaks = rest
            .chunks_exact(32)
            .map(|c| <Hash>::try_from(c).unwrap_or([0; 32]))
            .collect();
        Ok(Self { size, peaks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root};

    #[test]
    fn the_head_is_the_root_of_every_leaf_so_far() {
        let mut leaves = Vec::new();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        for i in 0..300u32 {
            let leaf = leaf_hash(&i.to_be_bytes());
            leaves.push(leaf);
            frontier.push(leaf);
            assert_eq!(frontier.size(), leaves.len() as u64);
            assert_eq!(frontier.root(), root(&leaves), "size {}", leaves.len());
            let again = Frontier::from_bytes(&frontier.to_bytes()).unwrap();
            assert_eq!(again, frontier);
        }
    }

    #[test]
    fn malformed_bytes_are_refused() {
        assert!(Frontier::from_bytes(&[]).is_err());
        let mut f = Frontier::new();
        for i in 0..5u8 {
            f.push(leaf_hash(&[i]));
        }
        let bytes = f.to_bytes();
        assert!(Frontier::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut extra = bytes.clone();
        extra.extend_from_slice(&[0; 32]);
        assert!(Frontier::from_bytes(&extra).is_err());
    }
}

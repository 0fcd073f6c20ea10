//! Known answers from RFC 6962's reference tree, every proof of every small tree, and
//! the transparency-dev mutation set: no mutated proof may verify.

use super::*;
use proptest::prelude::*;

fn h(hex: &str) -> Hash {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

/// The eight leaves of Certificate Transparency's reference tree.
fn reference_leaves() -> Vec<Hash> {
    let data: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    data.iter().map(|d| leaf_hash(d)).collect()
}

/// Its heads for sizes 0 to 8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn heads_match_the_reference_tree() {
    let leaves = reference_leaves();
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(root(&leaves[..n]), h(want), "size {n}");
    }
    assert_eq!(empty_root(), h(ROOTS[0]));
}

#[test]
fn inclusion_proofs_match_the_reference_proofs() {
    let leaves = reference_leaves();
    let cases: [(usize, usize, &[&str]); 3] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
    ];
    for (index, size, want) in cases {
        let proof = inclusion_proof(&leaves[..size], index).unwrap();
        let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
        assert_eq!(proof, want, "leaf {index} of {size}");
        verify_inclusion(
            &leaves[index],
            index as u64,
            size as u64,
            &proof,
            &h(ROOTS[size]),
        )
        .unwrap();
    }
}

#[test]
fn consistency_proofs_match_the_reference_proofs() {
    let leaves = reference_leaves();
    let cases: [(usize, usize, &[&str]); 3] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, want) in cases {
        let proof = consistency_proof(&leaves[..new], old).unwrap();
        let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
        assert_eq!(proof, want, "{old} → {new}");
        verify_consistency(
            old as u64,
            new as u64,
            &h(ROOTS[old]),
            &h(ROOTS[new]),
            &proof,
        )
        .unwrap();
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&(i as u32).to_be_bytes()))
        .collect()
}

/// Every way the transparency-dev suite mutates a proof.
fn mutations(proof: &[Hash]) -> Vec<Vec<Hash>> {
    let garbage = leaf_hash(b"garbage");
    let mut out = Vec::new();
    for i in 0..proof.len() {
        for bit in [0, 7, 100, 255] {
            let mut p = proof.to_vec();
            p[i][bit / 8] ^= 1 << (bit % 8);
            out.push(p);
        }
        let mut removed = proof.to_vec();
        removed.remove(i);
        out.push(removed);
    }
    for i in 0..=proof.len() {
        let mut inserted = proof.to_vec();
        inserted.insert(i, garbage);
        out.push(inserted);
    }
    let mut doubled = proof.to_vec();
    doubled.extend_from_slice(proof);
    if !proof.is_empty() {
        out.push(doubled);
    }
    out
}

#[test]
fn every_inclusion_proof_verifies_and_no_mutation_does() {
    for size in 1..=40usize {
        let all = leaves(size);
        let head = root(&all);
        for index in 0..size {
            let proof = inclusion_proof(&all, index).unwrap();
            let (i, n) = (index as u64, size as u64);
            verify_inclusion(&all[index], i, n, &proof, &head)
                .unwrap_or_else(|e| panic!("leaf {index} of {size}: {e}"));
            for bad in mutations(&proof) {
                assert!(verify_inclusion(&all[index], i, n, &bad, &head).is_err());
            }
            let mut wrong_leaf = all[index];
            wrong_leaf[0] ^= 1;
            assert!(verify_inclusion(&wrong_leaf, i, n, &proof, &head).is_err());
            for other in [i.wrapping_sub(1), i + 1] {
                if other < n && other != i {
                    assert!(verify_inclusion(&all[index], other, n, &proof, &head).is_err());
                }
            }
            for other in [n * 2, n / 2] {
                if other != n {
                    assert!(verify_inclusion(&all[index], i, other, &proof, &head).is_err());
                }
            }
            assert!(verify_inclusion(&all[index], i, n, &proof, &empty_root()).is_err());
            assert!(verify_inclusion(&all[index], i, n, &proof, &leaf_hash(b"x")).is_err());
        }
        assert!(inclusion_proof(&all, size).is_none());
    }
}

#[test]
fn every_consistency_proof_verifies_and_no_mutation_does() {
    for new in 1..=33usize {
        let all = leaves(new);
        let new_root = root(&all);
        for old in 1..=new {
            let old_root = root(&all[..old]);
            let proof = consistency_proof(&all, old).unwrap();
            let (m, n) = (old as u64, new as u64);
            verify_consistency(m, n, &old_root, &new_root, &proof)
                .unwrap_or_else(|e| panic!("{old} → {new}: {e}"));
            for bad in mutations(&proof) {
                assert!(
                    verify_consistency(m, n, &old_root, &new_root, &bad).is_err(),
                    "{old} → {new}: mutated proof accepted"
                );
            }
            let mut wrong = old_root;
            wrong[31] ^= 1;
            assert!(verify_consistency(m, n, &wrong, &new_root, &proof).is_err());
            assert!(verify_consistency(m, n, &old_root, &wrong, &proof).is_err());
            for (om, on) in [(m + 1, n), (m.saturating_sub(1), n), (m, n * 2), (m, n / 2)] {
                if (om, on) != (m, n) && om > 0 {
                    assert!(
                        verify_consistency(om, on, &old_root, &new_root, &proof).is_err(),
                        "{old} → {new} accepted as {om} → {on}"
                    );
                }
            }
        }
        assert!(consistency_proof(&all, 0).is_none());
        assert!(consistency_proof(&all, new + 1).is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Arbitrary proofs for arbitrary positions never verify by accident, and never panic.
    #[test]
    fn random_proofs_are_refused(
        index in 0u64..1000,
        size in 0u64..1000,
        proof in proptest::collection::vec(any::<[u8; 32]>(), 0..12),
        leaf in any::<[u8; 32]>(),
        root in any::<[u8; 32]>(),
    ) {
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_err());
        prop_assert!(verify_consistency(index, size, &leaf, &root, &proof).is_err() || index == 0 || index == size);
    }
}

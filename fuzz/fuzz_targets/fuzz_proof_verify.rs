//! Arbitrary bytes as an event proof document: reading and checking it must never panic,
//! and nothing but a proof this signer made holds. A valid proof, written out and read
//! back, still holds; with any single byte of its document changed, it is refused or
//! (when the change does not alter what the document says, e.g. in whitespace) holds
//! as the same proof.

#![no_main]

use evident_integrity::merkle::{inclusion_proof, leaf_hash, root};
use evident_integrity::{Checkpoint, EventProof, Hash, Signer};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A fixed signer and one valid proof (event 3 of 7), made once.
fn fixture() -> &'static (Signer, EventProof) {
    static FIXTURE: OnceLock<(Signer, EventProof)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let signer = Signer::from_secret(&[7; 32]);
        let events: Vec<Vec<u8>> = (0..7)
            .map(|i| format!("{{\"id\":\"{i}\",\"type\":\"auth.login\"}}").into_bytes())
            .collect();
        let leaves: Vec<Hash> = events.iter().map(|e| leaf_hash(e)).collect();
        let checkpoint = signer
            .sign(Checkpoint {
                origin: "fuzz".into(),
                size: 7,
                root: root(&leaves),
                time: 1,
            })
            .expect("sign");
        let proof = EventProof {
            event: events[3].clone(),
            index: 3,
            checkpoint,
            path: inclusion_proof(&leaves, 3).expect("path"),
        };
        (signer, proof)
    })
}

fuzz_target!(|data: &[u8]| {
    let (signer, valid) = fixture();
    let public = signer.public_key();
    if let Ok(proof) = EventProof::from_json(data) {
        if proof.verify(&public).is_ok() {
            assert_eq!(proof.event, valid.event, "a proof this signer never made holds");
            assert_eq!(proof.index, valid.index);
        }
    }
    // The valid proof with one byte of its document changed at a place the input picks.
    let document = serde_json::to_vec(&valid.to_json()).expect("json");
    EventProof::from_json(&document)
        .expect("read back")
        .verify(&public)
        .expect("round trip holds");
    if let Some((&at, rest)) = data.split_first() {
        let mut changed = document.clone();
        let i = (usize::from(at) * 7 + rest.len()) % changed.len();
        changed[i] = rest.first().copied().unwrap_or(b'x');
        if let Ok(proof) = EventProof::from_json(&changed) {
            if proof.verify(&public).is_ok() {
                assert_eq!(&proof, valid, "a changed proof holds as another proof");
            }
        }
    }
});

//! A portable proof that one event is in the signed log: the event's stored bytes, its
//! place in the log, the signed checkpoint and the inclusion path, as one JSON document
//! that a third party checks with the service's public key alone
//! (`evident verify-proof`, or any RFC 6962 implementation and an Ed25519 library).
//!
//! ```json
//! {
//!   "format": "evident event proof v1",
//!   "event": "<base64 of the event's stored bytes>",
//!   "index": 41,
//!   "checkpoint": {"origin": "...", "size": 100, "root": "<base64>", "time": 1764000000000000,
//!                  "key_id": "<hex>", "signature": "<base64>"},
//!   "path": ["<base64 hash>", "..."]
//! }
//! ```
//!
//! The leaf hash is computed from `event` by the checker, never taken from the proof: an
//! altered event cannot come with a proof that holds.

use crate::checkpoint::{Checkpoint, CheckpointError, Signed};
use crate::merkle::Hash;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// The `format` every proof of this version carries.
pub const FORMAT: &str = "evident event proof v1";

/// One event's inclusion proof against a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventProof {
    /// The event's stored bytes (its canonical encoding: what the log hashes).
    pub event: Vec<u8>,
    /// Its position in the log (0 is the log's first event).
    pub index: u64,
    /// The checkpoint the proof leads to.
    pub checkpoint: Signed,
    /// The inclusion path, leaf to root.
    pub path: Vec<Hash>,
}

/// Why a proof document does not hold, or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofCheckError {
    /// The document is not a proof of this format.
    #[error("not an evident event proof: {0}")]
    Malformed(String),
    /// The checkpoint's signature, or the path to its head, does not hold.
    #[error(transparent)]
    Check(#[from] CheckpointError),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format: String,
    event: String,
    index: u64,
    checkpoint: CheckpointDocument,
    path: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointDocument {
    origin: String,
    size: u64,
    root: String,
    time: i64,
    key_id: String,
    signature: String,
}

impl EventProof {
    /// Checks the proof with the service's public key: the checkpoint is signed by it,
    /// and the event's own hash leads, by the path, to the checkpoint's head.
    pub fn verify(&self, public: &[u8; 32]) -> Result<(), ProofCheckError> {
        self.checkpoint
            .verify_event(public, &self.event, self.index, &self.path)?;
        Ok(())
    }

    /// The proof as its JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        let signed = &self.checkpoint;
        let document = Document {
            format: FORMAT.into(),
            event: STANDARD.encode(&self.event),
            index: self.index,
            checkpoint: CheckpointDocument {
                origin: signed.checkpoint.origin.clone(),
                size: signed.checkpoint.size,
                root: STANDARD.encode(signed.checkpoint.root),
                time: signed.checkpoint.time,
                key_id: signed.key_id.clone(),
                signature: STANDARD.encode(signed.signature),
            },
            path: self.path.iter().map(|h| STANDARD.encode(h)).collect(),
        };
        serde_json::to_value(document).unwrap_or_default()
    }

    /// Reads a proof document (the JSON [`EventProof::to_json`] writes).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProofCheckError> {
        let bad = |what: String| ProofCheckError::Malformed(what);
        let document: Document = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if document.format != FORMAT {
            return Err(bad(format!(
                "format is `{}`, expected `{FORMAT}`",
                document.format
            )));
        }
        let event = STANDARD
            .decode(&document.event)
            .map_err(|e| bad(format!("event: {e}")))?;
        let c = document.checkpoint;
        let root = decode_array(&c.root)
            .ok_or_else(|| bad("checkpoint.root: not 32 bytes of base64".into()))?;
        let signature = decode_array(&c.signature)
            .ok_or_else(|| bad("checkpoint.signature: not 64 bytes of base64".into()))?;
        let path = document
            .path
            .iter()
            .enumerate()
            .map(|(i, h)| {
                decode_array(h).ok_or_else(|| bad(format!("path[{i}]: not 32 bytes of base64")))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        Ok(Self {
            event,
            index: document.index,
            checkpoint: Signed {
                checkpoint: Checkpoint {
                    origin: c.origin,
                    size: c.size,
                    root,
                    time: c.time,
                },
                key_id: c.key_id,
                signature,
            },
            path,
        })
    }
}

fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Signer;
    use crate::merkle::{inclusion_proof, leaf_hash, root};

    fn proofs(n: usize) -> (Signer, Vec<EventProof>) {
        let events: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("{{\"id\":{i},\"type\":\"auth.login.failure\"}}").into_bytes())
            .collect();
        let leaves: Vec<Hash> = events.iter().map(|e| leaf_hash(e)).collect();
        let signer = Signer::generate();
        let signed = signer
            .sign(Checkpoint {
                origin: "plant-1".into(),
                size: n as u64,
                root: root(&leaves),
                time: 1,
            })
            .unwrap();
        let proofs = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| EventProof {
                event,
                index: i as u64,
                checkpoint: signed.clone(),
                path: inclusion_proof(&leaves, i).unwrap(),
            })
            .collect();
        (signer, proofs)
    }

    #[test]
    fn every_proof_survives_its_document_and_holds() {
        let (signer, proofs) = proofs(13);
        for proof in proofs {
            let text = serde_json::to_vec(&proof.to_json()).unwrap();
            let read = EventProof::from_json(&text).unwrap();
            assert_eq!(read, proof);
            read.verify(&signer.public_key()).unwrap();
        }
    }

    #[test]
    fn a_changed_event_index_path_or_key_fails() {
        let (signer, proofs) = proofs(9);
        let public = signer.public_key();
        let mut proof = proofs[4].clone();
        proof.event[3] ^= 1;
        assert!(proof.verify(&public).is_err(), "altered event");
        let mut proof = proofs[4].clone();
        proof.index = 5;
        assert!(proof.verify(&public).is_err(), "other index");
        let mut proof = proofs[4].clone();
        proof.path[0][0] ^= 0x80;
        assert!(proof.verify(&public).is_err(), "altered path");
        let mut proof = proofs[4].clone();
        proof.path.pop();
        assert!(proof.verify(&public).is_err(), "short path");
        let other = Signer::generate().public_key();
        assert!(matches!(
            proofs[4].verify(&other),
            Err(ProofCheckError::Check(CheckpointError::OtherKey { .. }))
        ));
    }

    #[test]
    fn malformed_documents_name_what_is_wrong() {
        let (_, proofs) = proofs(3);
        let mut doc = proofs[1].to_json();
        doc["path"][0] = "AAAA".into();
        let err = EventProof::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
        assert!(err.to_string().contains("path[0]"), "{err}");
        let mut doc = proofs[1].to_json();
        doc["format"] = "something else".into();
        let err = EventProof::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
        assert!(err.to_string().contains("format"), "{err}");
        assert!(EventProof::from_json(b"{").is_err());
    }
}

//! Signed checkpoints: a log's size and head at a moment, signed with the service's
//! Ed25519 key, so anyone holding the public key can check a proof against it offline.
//!
//! What is signed is a short text, one field per line, so it can be read and checked by
//! hand as well:
//!
//! ```text
//! evident checkpoint v1
//! <origin: the log's name, e.g. the service's address or plant>
//! <size: number of events>
//! <root: base64 of the RFC 6962 head>
//! <time: Unix microseconds when signed>
//! ```

use crate::merkle::{Hash, ProofError, leaf_hash, verify_consistency, verify_inclusion};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// First line of every signed checkpoint text.
const HEADER: &str = "evident checkpoint v1";

/// A log's state at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (which service, which plant).
    pub origin: String,
    /// Events in the log.
    pub size: u64,
    /// The RFC 6962 head of those events.
    pub root: Hash,
    /// When it was signed, Unix microseconds.
    pub time: i64,
}

impl Checkpoint {
    /// The text that is signed.
    pub fn text(&self) -> String {
        format!(
            "{HEADER}\n{}\n{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root),
            self.time
        )
    }
}

/// A checkpoint with its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// Which key signed it ([`key_id`]).
    pub key_id: String,
    /// The Ed25519 signature of [`Checkpoint::text`].
    pub signature: [u8; 64],
}

/// Why a checkpoint or a proof against it does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The key is not a valid Ed25519 public key.
    #[error("not an Ed25519 public key")]
    BadKey,
    /// Signed by another key.
    #[error("signed by key {found}, not by key {expected}")]
    OtherKey {
        /// The checkpoint's key id.
        found: String,
        /// The key id of the key given.
        expected: String,
    },
    /// The signature does not match the checkpoint.
    #[error("the signature does not match the checkpoint")]
    BadSignature,
    /// The origin is not the log's name (line breaks would make the text ambiguous).
    #[error("an origin is one line of text")]
    BadOrigin,
    /// The proof does not lead to the checkpoint's head.
    #[error("the proof does not hold: {0}")]
    Proof(#[from] ProofError),
}

/// A short, stable name for a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(public: &[u8; 32]) -> String {
    Sha256::digest(public)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The service's signing key.
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never goes into logs.
        write!(f, "Signer({})", key_id(&self.public_key()))
    }
}

impl Signer {
    /// A new random key (from the operating system's randomness).
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        Self::from_secret(&secret)
    }

    /// The key with this 32-byte secret.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte secret, to keep in a file only the service can read.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key, published for verifiers.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `checkpoint`.
    pub fn sign(&self, checkpoint: Checkpoint) -> Result<Signed, CheckpointError> {
        if checkpoint.origin.contains(['\n', '\r']) {
            return Err(CheckpointError::BadOrigin);
        }
        let signature = self.key.sign(checkpoint.text().as_bytes()).to_bytes();
        Ok(Signed {
            checkpoint,
            key_id: key_id(&self.public_key()),
            signature,
        })
    }
}

impl Signed {
    /// Checks the signature with `public` (the service's published key).
    pub fn verify(&self, public: &[u8; 32]) -> Result<(), CheckpointError> {
        let key = VerifyingKey::from_bytes(public).map_err(|_| CheckpointError::BadKey)?;
        let expected = key_id(public);
        if self.key_id != expected {
            return Err(CheckpointError::OtherKey {
                found: self.key_id.clone(),
                expected,
            });
        }
        if self.checkpoint.origin.contains(['\n', '\r']) {
            return Err(CheckpointError::BadOrigin);
        }
        key.verify_strict(
            self.checkpoint.text().as_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| CheckpointError::BadSignature)
    }

    /// Checks that `event` (its stored bytes) is entry `index` (its sequence number
    /// minus one) of the log this checkpoint signs, by `proof`, with `public` alone.
    pub fn verify_event(
        &self,
        public: &[u8; 32],
        event: &[u8],
        index: u64,
        proof: &[Hash],
    ) -> Result<(), CheckpointError> {
        self.verify(public)?;
        verify_inclusion(
            &leaf_hash(event),
            index,
            self.checkpoint.size,
            proof,
            &self.checkpoint.root,
        )?;
        Ok(())
    }

    /// Checks that this checkpoint's log extends `earlier`'s (nothing rewritten or
    /// removed in between), both signed by `public`, by a consistency `proof`.
    pub fn verify_extends(
        &self,
        earlier: &Signed,
        public: &[u8; 32],
        proof: &[Hash],
    ) -> Result<(), CheckpointError> {
        self.verify(public)?;
        earlier.verify(public)?;
        verify_consistency(
            earlier.checkpoint.size,
            self.checkpoint.size,
            &earlier.checkpoint.root,
            &self.checkpoint.root,
            proof,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{consistency_proof, inclusion_proof, root};

    fn log(n: usize) -> (Vec<Vec<u8>>, Vec<Hash>) {
        let events: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("{{\"id\":{i},\"type\":\"auth.login.failure\"}}").into_bytes())
            .collect();
        let leaves = events.iter().map(|e| leaf_hash(e)).collect();
        (events, leaves)
    }

    fn checkpoint(leaves: &[Hash]) -> Checkpoint {
        Checkpoint {
            origin: "evident plant-1".into(),
            size: leaves.len() as u64,
            root: root(leaves),
            time: 1_780_000_000_000_000,
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_the_public_key_alone() {
        let signer = Signer::generate();
        let public = signer.public_key();
        let (events, leaves) = log(10);
        let signed = signer.sign(checkpoint(&leaves)).unwrap();
        signed.verify(&public).unwrap();
        // Every event's proof holds; a changed event, index or proof does not.
        for (i, event) in events.iter().enumerate() {
            let proof = inclusion_proof(&leaves, i).unwrap();
            signed
                .verify_event(&public, event, i as u64, &proof)
                .unwrap();
            let mut altered = event.clone();
            altered[2] ^= 1;
            assert!(
                signed
                    .verify_event(&public, &altered, i as u64, &proof)
                    .is_err()
            );
            assert!(
                signed
                    .verify_event(&public, event, i as u64 + 1, &proof)
                    .is_err()
            );
        }
        // A reloaded key is the same key.
        let again = Signer::from_secret(&signer.secret());
        assert_eq!(again.public_key(), public);
        assert!(format!("{again:?}").contains(&key_id(&public)));
    }

    #[test]
    fn any_change_to_a_signed_checkpoint_is_caught() {
        let signer = Signer::generate();
        let public = signer.public_key();
        let (_, leaves) = log(7);
        let signed = signer.sign(checkpoint(&leaves)).unwrap();
        let mut changes: Vec<Signed> = Vec::new();
        let mut c = signed.clone();
        c.checkpoint.size += 1;
        changes.push(c);
        let mut c = signed.clone();
        c.checkpoint.root[5] ^= 0x10;
        changes.push(c);
        let mut c = signed.clone();
        c.checkpoint.time -= 1;
        changes.push(c);
        let mut c = signed.clone();
        c.checkpoint.origin.push('x');
        changes.push(c);
        for bit in [0, 100, 511] {
            let mut c = signed.clone();
            c.signature[bit / 8] ^= 1 << (bit % 8);
            changes.push(c);
        }
        for changed in changes {
            assert!(changed.verify(&public).is_err(), "{changed:?}");
        }
        // Another key: refused by id, and by signature if the id is forged too.
        let other = Signer::generate();
        assert!(matches!(
            signed.verify(&other.public_key()),
            Err(CheckpointError::OtherKey { .. })
        ));
        let mut forged = signed.clone();
        forged.key_id = key_id(&other.public_key());
        assert_eq!(
            forged.verify(&other.public_key()),
            Err(CheckpointError::BadSignature)
        );
        let resigned = other.sign(signed.checkpoint.clone()).unwrap();
        assert!(
            resigned.verify(&public).is_err(),
            "a swapped signing key is caught"
        );
        let bad_origin = Checkpoint {
            origin: "a\nb".into(),
            ..signed.checkpoint.clone()
        };
        assert_eq!(signer.sign(bad_origin), Err(CheckpointError::BadOrigin));
    }

    #[test]
    fn a_later_checkpoint_proves_it_extends_an_earlier_one() {
        let signer = Signer::generate();
        let public = signer.public_key();
        let (_, leaves) = log(20);
        let earlier = signer.sign(checkpoint(&leaves[..7])).unwrap();
        let later = signer.sign(checkpoint(&leaves)).unwrap();
        let proof = consistency_proof(&leaves, 7).unwrap();
        later.verify_extends(&earlier, &public, &proof).unwrap();
        // A log rewritten after the earlier checkpoint does not extend it.
        let mut rewritten = leaves.clone();
        rewritten[3] = leaf_hash(b"forged");
        let forged = signer.sign(checkpoint(&rewritten)).unwrap();
        let proof = consistency_proof(&rewritten, 7).unwrap();
        assert!(forged.verify_extends(&earlier, &public, &proof).is_err());
    }
}

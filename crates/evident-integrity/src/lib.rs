//! evident's tamper evidence, the parts a third party needs to check it.
//!
//! # Layout
//!
//! - [`checkpoint`]: signed checkpoints (a log's size and head, Ed25519-signed) and
//!   checking an event's proof, or a later checkpoint, against them with the public
//!   key alone.
//! - [`frontier`]: a growing tree's compact frontier: append and head in O(log n).
//! - [`verify`]: walking a stored log against its signed checkpoints, naming the first
//!   event altered, missing or out of order, or the checkpoint range affected.
//! - [`proof`]: one event's inclusion proof as a portable JSON document.
//! - [`merkle`]: RFC 6962 (Certificate Transparency) Merkle trees: leaf and node hashing
//!   with domain separation, tree heads, inclusion proofs (this event is in the log the
//!   signed checkpoint covers) and consistency proofs (this log extends that one), and
//!   their verification.
//!
//! Nothing here touches a store: a verifier holding a proof, the checkpoint and the
//! public key needs only this crate.

pub mod checkpoint;
pub mod frontier;
pub mod merkle;
pub mod proof;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, Signed, Signer, key_id};
pub use frontier::Frontier;
pub use merkle::{Hash, ProofError};
pub use proof::{EventProof, ProofCheckError};

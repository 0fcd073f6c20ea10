//! `evident verify-proof`: checks an event's inclusion proof (as
//! `GET /api/v1/events/{id}/proof` hands it out) offline, with the public key alone.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evident_integrity::{EventProof, key_id};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `evident verify-proof`.
#[derive(Debug, clap::Args)]
pub struct VerifyProofArgs {
    /// The proof document (JSON); `-` reads it from standard input.
    pub proof: PathBuf,
    /// The service's public key (base64, as `GET /api/v1/integrity/key` publishes it).
    #[arg(long)]
    pub public_key: String,
}

/// Exit 0: the proof holds. 1: it does not. 2: it could not be read.
pub fn run(args: VerifyProofArgs) -> anyhow::Result<ExitCode> {
    let (public, proof) = match read(&args) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let event: serde_json::Value = serde_json::from_slice(&proof.event).unwrap_or_default();
    let id = event["id"]
        .as_str()
        .unwrap_or("(an event whose bytes are not JSON)");
    let checkpoint = &proof.checkpoint.checkpoint;
    match proof.verify(&public) {
        Ok(()) => {
            let signed_at = evident_model::from_unix_micros(checkpoint.time)
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| checkpoint.time.to_string());
            println!(
                "ok: event {id} is entry {} of the log `{}`: its checkpoint of {} events, signed by key {} at {signed_at}, holds",
                proof.index,
                checkpoint.origin,
                checkpoint.size,
                key_id(&public),
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED: the proof for event {id} does not hold: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn read(args: &VerifyProofArgs) -> anyhow::Result<([u8; 32], EventProof)> {
    let public: [u8; 32] = STANDARD
        .decode(args.public_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("--public-key is not a base64 Ed25519 public key (32 bytes)")?;
    let mut bytes = Vec::new();
    if args.proof.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the proof from standard input")?;
    } else {
        bytes = std::fs::read(&args.proof)
            .with_context(|| format!("cannot read {}", args.proof.display()))?;
    }
    let proof = EventProof::from_json(&bytes)?;
    Ok((public, proof))
}

//! `evident dlq`: list and replay dead letters through the API (admin key).

use crate::cli::{DlqArgs, DlqCommand};
use crate::client::Client;
use std::process::ExitCode;

/// Runs a dlq subcommand.
pub async fn run(args: DlqArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DlqCommand::List { limit, client } => {
            let client = Client::from_args(&client)?;
            let answer = client
                .get_json(
                    "/api/v1/dead-letters",
                    &[("limit".into(), limit.to_string())],
                )
                .await?;
            let letters = answer["dead_letters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for letter in &letters {
                println!("{letter}");
            }
            eprintln!("{} dead letters", letters.len());
        }
        DlqCommand::Replay { limit, client } => {
            let client = Client::from_args(&client)?;
            let answer = client
                .post_json(
                    "/api/v1/dead-letters/replay",
                    &[("limit".into(), limit.to_string())],
                )
                .await?;
            let n = |k: &str| answer[k].as_u64().unwrap_or(0);
            eprintln!(
                "replayed {}: {} stored, {} already stored, {} refused again (still dead letters), {} failed (left in place)",
                n("replayed"),
                n("stored"),
                n("duplicates"),
                n("dead_lettered_again"),
                n("failed")
            );
            if n("dead_lettered_again") + n("failed") > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

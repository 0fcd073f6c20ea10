//! `evident keys`: key management directly on a data directory (works while the service runs).

use crate::cli::{KeysArgs, KeysCommand, RoleArg};
use anyhow::Context;
use evident_store::{KeyStore, PgStore, RetentionPolicy, Role, SqliteStore};
use std::process::ExitCode;

/// Runs a keys subcommand.
pub async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Create {
            data_dir,
            database_url,
            role,
            facilities,
            label,
            personal,
        } => {
            let store: Box<dyn KeyStore> = match database_url {
                Some(url) => Box::new(
                    PgStore::connect(&url, RetentionPolicy::default())
                        .await
                        .context("cannot open the PostgreSQL store")?,
                ),
                None => {
                    Box::new(SqliteStore::open_shared(&data_dir).context("cannot open the store")?)
                }
            };
            let role = match role {
                RoleArg::Ingest => Role::Ingest,
                RoleArg::Read => Role::Read,
                RoleArg::Admin => Role::Admin,
            };
            let facilities = (!facilities.is_empty()).then_some(facilities);
            let secret = store
                .create_key_with(role, facilities, label, personal)
                .await?;
            println!("{secret}");
            let reads = if personal || role == Role::Admin {
                "personal data in the clear"
            } else {
                "pseudonyms in place of personal data"
            };
            eprintln!(
                "created a {role} key (it reads {reads}); store it now, it cannot be shown again"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

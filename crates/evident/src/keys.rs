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
            let article = if role == Role::Read { "a" } else { "an" };
            eprintln!(
                "created {article} {role} key ({}); store it now, it cannot be shown again",
                what_it_may_do(role, personal)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What a new key may do, for the message `keys create` prints.
fn what_it_may_do(role: Role, personal: bool) -> &'static str {
    match role {
        Role::Ingest => "it may only send events; it cannot read any",
        Role::Read if personal => "it reads events, with personal data in the clear",
        Role::Read => "it reads events, with pseudonyms in place of personal data",
        Role::Admin => "it may do everything, and reads personal data in the clear",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ingest_key_is_not_said_to_read() {
        for personal in [false, true] {
            let said = what_it_may_do(Role::Ingest, personal);
            assert!(said.contains("only send"), "{said}");
            assert!(!said.contains("reads"), "{said}");
        }
        assert!(what_it_may_do(Role::Read, false).contains("pseudonyms"));
        assert!(what_it_may_do(Role::Read, true).contains("in the clear"));
        assert!(what_it_may_do(Role::Admin, false).contains("in the clear"));
    }
}

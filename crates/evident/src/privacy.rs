//! Personal data protection for `evident serve`: the master key, the subjects' key store
//! and the personal fields, from the command line and environment.

use crate::cli::ServeArgs;
use anyhow::Context;
use evident_privacy::{MasterKey, PersonalField, Privacy, SubjectKeys};
use std::sync::Arc;

/// Default master key file in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
/// Default subject key store in the data directory.
pub const SUBJECT_KEYS_FILE: &str = "subject-keys.db";

/// The protection `args` ask for; `None` when the personal fields are `none`.
pub fn open(args: &ServeArgs) -> anyhow::Result<Option<Arc<Privacy>>> {
    let fields = personal_fields(&args.personal_fields)?;
    if fields.is_empty() {
        return Ok(None);
    }
    let master = match &args.master_key {
        Some(text) => MasterKey::from_base64(text)
            .context("EVIDENT_MASTER_KEY (--master-key) is not a usable master key")?,
        None => {
            let path = args
                .master_key_file
                .clone()
                .unwrap_or_else(|| args.data_dir.join(MASTER_KEY_FILE));
            MasterKey::load_or_create(&path)
                .with_context(|| format!("cannot load the master key {}", path.display()))?
        }
    };
    let path = args
        .subject_keys
        .clone()
        .unwrap_or_else(|| args.data_dir.join(SUBJECT_KEYS_FILE));
    let keys = SubjectKeys::open(&path, &master)
        .with_context(|| format!("cannot open the subject key store {}", path.display()))?;
    let names: Vec<String> = fields.iter().map(PersonalField::path).collect();
    println!("personal data protected: {}", names.join(", "));
    Ok(Some(Arc::new(Privacy::new(&master, keys, fields))))
}

/// The personal fields named on the command line (`none` alone: no field).
pub fn personal_fields(names: &[String]) -> anyhow::Result<Vec<PersonalField>> {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names == ["none"] {
        return Ok(Vec::new());
    }
    names
        .iter()
        .map(|name| PersonalField::parse(name).with_context(|| "--personal-fields"))
        .collect()
}

//! The key store: subjects' data keys, wrapped under the master key, and the record of
//! erasures, in a SQLite file of their own.
//!
//! Tables:
//!
//! - `subject_keys(id TEXT PRIMARY KEY, wrapped BLOB NOT NULL, created_at INTEGER NOT NULL)`:
//!   one row per held key; `wrapped` is a 12-byte nonce followed by the AES-256-GCM
//!   encryption of the data key under the key-wrapping key derived from the master key,
//!   with associated data `evident subject key v1` followed by the id.
//! - `erasures(id TEXT PRIMARY KEY, erased_at INTEGER NOT NULL)`: when a subject's key was
//!   last erased.
//!
//! Ids are subject pseudonyms; times are Unix seconds. The file runs in WAL mode with full
//! synchronous commits and `secure_delete`, and its write-ahead log is truncated after each
//! erasure, so an erased key's bytes do not remain in the file or its log.

use crate::field::{DataKey, NONCE_LEN, TAG_LEN};
use crate::master::{KEY_WRAP_LABEL, MasterKey};
use crate::{PrivacyError, io_at, unix_now};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Label in front of a wrapped key's associated data.
const WRAP_AAD_LABEL: &[u8] = b"evident subject key v1";
/// The cache of unwrapped keys is emptied when it grows past this many entries.
const CACHE_LIMIT: usize = 1_000_000;

/// What the key store knows about a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// A key is held: the subject's sealed events can be read. Also the status of a subject
    /// erased before who has had new events since (those use a new key).
    Held {
        /// When the key was created (Unix seconds).
        created_at: i64,
    },
    /// The subject's key was erased and no new key has been made since.
    Erased {
        /// When the key was erased (Unix seconds).
        erased_at: i64,
    },
    /// No key was ever made for this subject.
    Unknown,
}

/// Subjects' data keys, kept wrapped under the master key in a SQLite file.
///
/// Safe to share between threads; every method takes `&self`.
pub struct SubjectKeys {
    path: PathBuf,
    wrap: Aes256Gcm,
    conn: Mutex<Connection>,
    cache: Mutex<HashMap<String, Arc<DataKey>>>,
}

impl SubjectKeys {
    /// Opens the key store at `path`, creating the file, its tables and its parent
    /// directories if needed. Refuses a key store whose keys were wrapped under another
    /// master key.
    pub fn open(path: &Path, master: &MasterKey) -> Result<Self, PrivacyError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_at("creating directory", dir, e))?;
        }
        let at =
            |e: rusqlite::Error| PrivacyError::KeyStore(format!("opening {}: {e}", path.display()));
        make_private(path).map_err(|e| io_at("making private", path, e))?;
        let conn = Connection::open(path).map_err(at)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(at)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(at)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(PrivacyError::KeyStore(format!(
                "opening {}: could not switch to WAL mode (journal mode is {mode})",
                path.display()
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL;
             PRAGMA secure_delete=ON;
             CREATE TABLE IF NOT EXISTS subject_keys (
                 id TEXT PRIMARY KEY,
                 wrapped BLOB NOT NULL,
                 created_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS erasures (
                 id TEXT PRIMARY KEY,
                 erased_at INTEGER NOT NULL
             );",
        )
        .map_err(at)?;
        let mut wrap_key = master.derive(KEY_WRAP_LABEL);
        let wrap = Aes256Gcm::new(&wrap_key.into());
        wrap_key.fill(0);
        std::hint::black_box(&wrap_key);
        let keys = Self {
            path: path.to_path_buf(),
            wrap,
            conn: Mutex::new(conn),
            cache: Mutex::new(HashMap::new()),
        };
        {
            let conn = keys.conn();
            // Clears anything an interrupted erasure may have left in the log.
            checkpoint(&conn);
            // One key tells whether this master key is the one the store was made with;
            // a store without keys holds nothing another master key could not read.
            let any: Option<(String, Vec<u8>)> = conn
                .query_row("SELECT id, wrapped FROM subject_keys LIMIT 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(at)?;
            if let Some((id, wrapped)) = any {
                keys.unwrap_key(&id, &wrapped)?;
            }
        }
        Ok(keys)
    }

    /// The keys of `ids`: for each, the key held for it, or a new key if none is held.
    /// New keys are all stored in one transaction before this returns. A new key may be
    /// made for a subject erased before: events arriving after an erasure are new data.
    pub fn keys_for(&self, ids: &[&str]) -> Result<HashMap<String, Arc<DataKey>>, PrivacyError> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing: Vec<&str> = Vec::new();
        {
            let cache = self.cache();
            let mut seen = HashSet::new();
            for &id in ids {
                if !seen.insert(id) {
                    continue;
                }
                match cache.get(id) {
                    Some(key) => {
                        found.insert(id.to_string(), key.clone());
                    }
                    None => missing.push(id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }

        // The connection stays locked until the cache is updated, so an erasure cannot
        // come between reading a key and caching it.
        let mut conn = self.conn();
        let mut loaded = Vec::with_capacity(missing.len());
        let mut fresh = Vec::new();
        {
            let mut select = conn
                .prepare_cached("SELECT wrapped FROM subject_keys WHERE id = ?1")
                .map_err(|e| self.error("reading", e))?;
            for &id in &missing {
                let wrapped: Option<Vec<u8>> = select
                    .query_row([id], |r| r.get(0))
                    .optional()
                    .map_err(|e| self.error("reading", e))?;
                match wrapped {
                    Some(w) => loaded.push((id, Arc::new(self.unwrap_key(id, &w)?))),
                    None => fresh.push((id, Arc::new(DataKey::generate()))),
                }
            }
        }
        if !fresh.is_empty() {
            let now = unix_now();
            let tx = conn.transaction().map_err(|e| self.error("writing", e))?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO subject_keys (id, wrapped, created_at) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(|e| self.error("writing", e))?;
                for (id, key) in &fresh {
                    insert
                        .execute(params![id, self.wrap_key(id, key), now])
                        .map_err(|e| self.error("writing", e))?;
                }
            }
            tx.commit().map_err(|e| self.error("writing", e))?;
        }
        let mut cache = self.cache();
        if cache.len() + loaded.len() + fresh.len() > CACHE_LIMIT {
            cache.clear();
        }
        for (id, key) in loaded.into_iter().chain(fresh) {
            cache.insert(id.to_string(), key.clone());
            found.insert(id.to_string(), key);
        }
        Ok(found)
    }

    /// The key held for `id`, or `None` if it was erased or never made. Never makes one.
    pub fn get(&self, id: &str) -> Result<Option<Arc<DataKey>>, PrivacyError> {
        if let Some(key) = self.cache().get(id) {
            return Ok(Some(key.clone()));
        }
        let conn = self.conn();
        let wrapped: Option<Vec<u8>> = conn
            .query_row(
                "SELECT wrapped FROM subject_keys WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error("reading", e))?;
        let Some(wrapped) = wrapped else {
            return Ok(None);
        };
        let key = Arc::new(self.unwrap_key(id, &wrapped)?);
        let mut cache = self.cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id.to_string(), key.clone());
        Ok(Some(key))
    }

    /// Whether a key is held for `id`, was erased, or was never made.
    pub fn status(&self, id: &str) -> Result<KeyStatus, PrivacyError> {
        let conn = self.conn();
        let created: Option<i64> = conn
            .query_row(
                "SELECT created_at FROM subject_keys WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error("reading", e))?;
        if let Some(created_at) = created {
            return Ok(KeyStatus::Held { created_at });
        }
        Ok(
            match erased_at(&conn, id).map_err(|e| self.error("reading", e))? {
                Some(erased_at) => KeyStatus::Erased { erased_at },
                None => KeyStatus::Unknown,
            },
        )
    }

    /// When `id`'s key was last erased, if ever, whether or not a new key is held now.
    pub(crate) fn erased_at(&self, id: &str) -> Result<Option<i64>, PrivacyError> {
        let conn = self.conn();
        erased_at(&conn, id).map_err(|e| self.error("reading", e))
    }

    /// Erases `id`'s key: deletes it and records the erasure, in one transaction, then
    /// truncates the write-ahead log so the deleted key's bytes do not remain in it.
    /// Returns whether a key was held. Erasing a subject without a key still records the
    /// erasure.
    pub fn erase(&self, id: &str) -> Result<bool, PrivacyError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(|e| self.error("erasing in", e))?;
        let deleted = tx
            .execute("DELETE FROM subject_keys WHERE id = ?1", [id])
            .map_err(|e| self.error("erasing in", e))?;
        tx.execute(
            "INSERT INTO erasures (id, erased_at) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET erased_at = excluded.erased_at",
            params![id, unix_now()],
        )
        .map_err(|e| self.error("erasing in", e))?;
        tx.commit().map_err(|e| self.error("erasing in", e))?;
        self.cache().remove(id);
        checkpoint(&conn);
        Ok(deleted > 0)
    }

    /// How many keys are held.
    pub fn len(&self) -> Result<usize, PrivacyError> {
        let conn = self.conn();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM subject_keys", [], |r| r.get(0))
            .map_err(|e| self.error("reading", e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> Result<bool, PrivacyError> {
        Ok(self.len()? == 0)
    }

    /// The file the keys are kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn wrap_key(&self, id: &str, key: &DataKey) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = wrap_aad(id);
        let sealed = self
            .wrap
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: key.bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encrypts a 32-byte key");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn unwrap_key(&self, id: &str, wrapped: &[u8]) -> Result<DataKey, PrivacyError> {
        let mismatch = || {
            PrivacyError::KeyStore(format!(
                "{}: the key of subject {id} could not be unwrapped: the master key does not \
                 match this key store, or the stored key was altered",
                self.path.display()
            ))
        };
        if wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
            return Err(mismatch());
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| mismatch())?;
        let aad = wrap_aad(id);
        let mut plain = self
            .wrap
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| mismatch())?;
        let key = <[u8; 32]>::try_from(plain.as_slice()).map_err(|_| mismatch());
        plain.fill(0);
        std::hint::black_box(&plain);
        key.map(DataKey::from_bytes)
    }

    fn error(&self, what: &str, e: rusqlite::Error) -> PrivacyError {
        PrivacyError::KeyStore(format!("{what} {}: {e}", self.path.display()))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held leaves nothing half-done that SQLite's own
        // transactions do not cover, so a poisoned lock is taken over.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, Arc<DataKey>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectKeys")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn wrap_aad(id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_LABEL.len() + id.len());
    aad.extend_from_slice(WRAP_AAD_LABEL);
    aad.extend_from_slice(id.as_bytes());
    aad
}

fn erased_at(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT erased_at FROM erasures WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()
}

/// Copies the write-ahead log into the database file and truncates it to zero bytes.
/// Best effort: if another connection is reading, the log is cleared at a later erasure
/// or the next open.
fn checkpoint(conn: &Connection) {
    // Nothing more can be done here if it fails; the next open tries again.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    })
    .ok();
}

/// Creates the key store file empty with mode 0600 before SQLite opens it (SQLite gives its
/// `-wal` and `-shm` files the same mode, whatever the umask), and takes any group or
/// other permission off an existing one and its companions.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::metadata(&name) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

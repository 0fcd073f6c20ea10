//! The master key: 32 random bytes kept in a file of their own, from which the pseudonym
//! key and the key-wrapping key are derived.

use crate::{PrivacyError, io_at};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::io::Write;
use std::path::Path;

/// Label of the key pseudonyms are computed under.
pub(crate) const PSEUDONYM_LABEL: &[u8] = b"evident pseudonym v1";
/// Label of the key subject keys are wrapped under.
pub(crate) const KEY_WRAP_LABEL: &[u8] = b"evident key wrap v1";

/// The 32-byte secret every other key of personal data protection comes from.
///
/// Its bytes are never printed (`Debug` shows `MasterKey(..)`) and are overwritten with
/// zeros when it is dropped.
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses a key from standard base64 (padded), ignoring surrounding whitespace.
    /// Anything but exactly 32 bytes is refused; the message never repeats the input.
    pub fn from_base64(text: &str) -> Result<Self, PrivacyError> {
        let mut bytes = STANDARD.decode(text.trim()).map_err(|_| {
            PrivacyError::MasterKey(
                "expected 32 bytes of base64, got text that is not valid base64".into(),
            )
        })?;
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            PrivacyError::MasterKey(format!(
                "expected 32 bytes of base64, got {} bytes",
                bytes.len()
            ))
        });
        bytes.fill(0);
        std::hint::black_box(&bytes);
        key.map(Self)
    }

    /// The key as standard base64 (44 characters), the form its file holds.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Reads the key from the file at `path`, or, if there is no such file, creates it
    /// (and its parent directories) with a fresh key. A new file is readable by its owner
    /// only (mode 0600 on Unix) and appears complete or not at all; if another process
    /// creates the file at the same moment, its key is read and used.
    pub fn load_or_create(path: &Path) -> Result<Self, PrivacyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_file_text(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(io_at("reading master key file", path, e)),
        }
    }

    fn from_file_text(path: &Path, text: &str) -> Result<Self, PrivacyError> {
        Self::from_base64(text).map_err(|e| match e {
            PrivacyError::MasterKey(why) => {
                PrivacyError::MasterKey(format!("{}: {why}", path.display()))
            }
            other => other,
        })
    }

    fn create(path: &Path) -> Result<Self, PrivacyError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(|e| io_at("creating directory", dir, e))?;
        let key = Self::generate();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "master.key".into());
        let temp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        let written = write_private(&temp, format!("{}\n", key.to_base64()).as_bytes());
        if let Err(e) = written {
            // The write failed; a partial temporary file is of no use to anyone.
            std::fs::remove_file(&temp).ok();
            return Err(io_at("writing master key file", &temp, e));
        }
        // Linking fails if the file appeared meanwhile, so a key another process has
        // just written is never replaced.
        let placed = match std::fs::hard_link(&temp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(_) => std::fs::rename(&temp, path).map(|()| true),
        };
        match std::fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at("removing temporary key file", &temp, e)),
        }
        match placed {
            Ok(true) => {
                sync_dir(dir).map_err(|e| io_at("flushing directory", dir, e))?;
                Ok(key)
            }
            Ok(false) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| io_at("reading master key file", path, e))?;
                Self::from_file_text(path, &text)
            }
            Err(e) => Err(io_at("creating master key file", path, e)),
        }
    }

    /// HMAC-SHA256 of `label` under the master key: a key for one purpose, independent of
    /// the keys derived for other labels.
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

/// Writes `bytes` to a new file at `path` that only its owner can read, and flushes it to
/// disk.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Flushes a directory's entries to disk, so a file just placed in it survives a crash.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Directories cannot be opened as files here; their entries are flushed by the system.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

crate::secret::secret_bytes!(MasterKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        let key = MasterKey::generate();
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let back = MasterKey::from_base64(&format!("  {text}\n")).unwrap();
        assert_eq!(back, key);
        assert_ne!(MasterKey::generate(), key);
    }

    #[test]
    fn wrong_length_or_not_base64_is_refused_without_echoing_the_input() {
        let short = STANDARD.encode([7u8; 31]);
        let err = MasterKey::from_base64(&short).unwrap_err().to_string();
        assert_eq!(err, "master key: expected 32 bytes of base64, got 31 bytes");
        let err = MasterKey::from_base64("not base64 at all!")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid base64"), "{err}");
        assert!(!err.contains("at all"), "{err}");
        let err = MasterKey::from_base64("").unwrap_err().to_string();
        assert!(err.contains("got 0 bytes"), "{err}");
    }

    #[test]
    fn debug_does_not_show_the_bytes() {
        let key = MasterKey::from_base64(&STANDARD.encode([0xab; 32])).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "MasterKey(..)");
    }

    #[test]
    fn derived_keys_differ_by_label_and_by_master() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a.derive(PSEUDONYM_LABEL), a.derive(KEY_WRAP_LABEL));
        assert_eq!(a.derive(PSEUDONYM_LABEL), a.derive(PSEUDONYM_LABEL));
        assert_ne!(a.derive(PSEUDONYM_LABEL), b.derive(PSEUDONYM_LABEL));
    }
}

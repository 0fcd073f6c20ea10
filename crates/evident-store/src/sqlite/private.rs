//! Files only the service's own user may read or write: the database and its journal
//! hold key hashes and every event.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file the store creates: owner read and write only.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as 0700 when it does not exist yet; an existing
/// directory keeps its mode.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Makes the SQLite database at `path` private before SQLite opens it: creates it empty
/// with mode 0600 when missing, and takes any group or other permission off it and its
/// companions (`-wal`, `-shm`, `-journal`) left by an older version. SQLite gives the
/// companions it creates the main file's mode, so they are 0600 too, whatever the umask.
pub(crate) fn prepare_database(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    for file in std::iter::once(path.to_owned()).chain(companions(path)) {
        restrict(&file)?;
    }
    Ok(())
}

/// Takes group and other permissions off `path` if it exists.
fn restrict(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn companions(path: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["-wal", "-shm", "-journal"].into_iter().map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_files_are_private_whatever_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        prepare_database(&db).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        // A store from an older version: world-readable files are tightened.
        let wal = dir.path().join("x.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&wal, Permissions::from_mode(0o664)).unwrap();
        prepare_database(&db).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
    }

    #[test]
    fn a_new_data_directory_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        create_dir(&data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}

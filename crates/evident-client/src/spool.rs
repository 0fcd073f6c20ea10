//! The on-disk spool: batches kept while the server cannot be reached, one NDJSON file
//! each, written whole (temporary file, fsync, rename) so a crash leaves whole batches
//! or none; sent again oldest first, and removed once stored.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A spool directory with a size bound.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    next: u64,
}

/// Why a batch could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool holds its bound already.
    #[error("the spool in {dir} is full ({bytes} bytes, bound {max})")]
    Full {
        /// The directory.
        dir: PathBuf,
        /// What it holds.
        bytes: u64,
        /// Its bound.
        max: u64,
    },
    /// The file system failed.
    #[error("spool {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

impl Spool {
    /// The spool in `dir` (created if missing), holding at most `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|e| SpoolError::Io(dir.to_owned(), e))?;
        let next = Self::files_in(dir)?
            .last()
            .and_then(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
            .map_or(0, |n| n + 1);
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            next,
        })
    }

    /// Keeps `lines` (one JSON event each) as one batch.
    pub fn push(&mut self, lines: &[String]) -> Result<(), SpoolError> {
        let held = self.bytes()?;
        if held >= self.max_bytes {
            return Err(SpoolError::Full {
                dir: self.dir.clone(),
                bytes: held,
                max: self.max_bytes,
            });
        }
        let name = format!("{:020}.ndjson", self.next);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let io = |e| SpoolError::Io(path.clone(), e);
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        for line in lines {
            file.write_all(line.as_bytes()).map_err(io)?;
            file.write_all(b"\n").map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            dir.sync_all().ok();
        }
        self.next += 1;
        Ok(())
    }

    /// The oldest batch, with the file it is in.
    pub fn oldest(&self) -> Result<Option<(PathBuf, Vec<String>)>, SpoolError> {
        let Some(path) = Self::files_in(&self.dir)?.into_iter().next() else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| SpoolError::Io(path.clone(), e))?;
        let lines = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Some((path, lines)))
    }

    /// Removes a batch that was stored.
    pub fn remove(&self, path: &Path) -> Result<(), SpoolError> {
        std::fs::remove_file(path).map_err(|e| SpoolError::Io(path.to_owned(), e))
    }

    /// Batches waiting.
    pub fn len(&self) -> Result<usize, SpoolError> {
        Ok(Self::files_in(&self.dir)?.len())
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> Result<bool, SpoolError> {
        Ok(self.len()? == 0)
    }

    fn bytes(&self) -> Result<u64, SpoolError> {
        Ok(Self::files_in(&self.dir)?
            .iter()
            .filter_map(|p| p.metadata().ok())
            .map(|m| m.len())
            .sum())
    }

    fn files_in(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| SpoolError::Io(dir.to_owned(), e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
            .collect();
        files.sort();
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_come_back_oldest_first_across_reopens_and_the_bound_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 32).unwrap();
        spool.push(&["{\"a\":1}".into()]).unwrap();
        spool
            .push(&["{\"b\":2}".into(), "{\"c\":3}".into()])
            .unwrap();
        let mut spool = Spool::open(dir.path(), 32).unwrap();
        spool.push(&["{\"d\":4}".into()]).unwrap();
        assert!(matches!(
            spool.push(&["{}".into()]),
            Err(SpoolError::Full { .. })
        ));
        let mut seen = Vec::new();
        while let Some((path, lines)) = spool.oldest().unwrap() {
            seen.extend(lines);
            spool.remove(&path).unwrap();
        }
        assert_eq!(
            seen,
            vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"d\":4}"]
        );
        assert!(spool.is_empty().unwrap());
    }
}

//! Whether the SQLite file this process writes is still the database its path names.
//!
//! SQLite keeps writing to the file it opened even after that file is deleted (`rm`) or
//! replaced (`mv` of a backup over it): the writes succeed, into an inode nobody will ever
//! open again, and every one of them is lost at the next start. A file truncated under it
//! fails later, in ways that look like bugs. So the store looks at the path before every write
//! and after it (before acknowledging it), and at every health check: the same device and
//! inode as when it was opened, and a SQLite header. Once that fails, the store refuses writes
//! until a restart opens whatever the path names then.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The first 16 bytes of every SQLite database file.
const HEADER: &[u8; 16] = b"SQLite format 3\0";

pub struct FileGuard {
    path: PathBuf,
    identity: (u64, u64),
    /// Why the file can no longer be trusted, once it cannot.
    lost: OnceLock<String>,
}

impl FileGuard {
    /// Remembers which file `path` names now, just after the store opened it.
    pub fn new(path: &Path) -> std::io::Result<Self> {
        let metadata = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            identity: (metadata.dev(), metadata.ino()),
            lost: OnceLock::new(),
        })
    }

    /// Ok while the path still names the file that was opened and that file has a SQLite
    /// header; else why not, the same answer from then on.
    pub fn check(&self) -> Result<(), &str> {
        if let Some(reason) = self.lost.get() {
            return Err(reason);
        }
        match self.look() {
            Ok(()) => Ok(()),
            Err(reason) => {
                let reason = self.lost.get_or_init(|| {
                    tracing::error!(
                        path = %self.path.display(),
                        reason = reason.as_str(),
                        "the database file is not the one this instance opened: writes are \
                         refused until a restart (restore the file, then restart)"
                    );
                    format!("the database file {} {reason}", self.path.display())
                });
                Err(reason)
            }
        }
    }

    fn look(&self) -> Result<(), String> {
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("was deleted".into());
            }
            // Cannot look (permissions changed, say): SQLite will say what is wrong itself.
            Err(_) => return Ok(()),
        };
        if (metadata.dev(), metadata.ino()) != self.identity {
            return Err("was replaced by another file".into());
        }
        let mut header = [0u8; 16];
        let read = File::open(&self.path).and_then(|mut file| file.read_exact(&mut header));
        match read {
            Ok(()) if &header == HEADER => Ok(()),
            Ok(()) => Err("no longer starts with a SQLite header".into()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err("was truncated".into()),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &Path) -> PathBuf {
        let path = dir.join("rbac.db");
        let mut bytes = HEADER.to_vec();
        bytes.resize(4096, 0);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("file-guard-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn uuid_like() -> String {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        hex::encode(bytes)
    }

    #[test]
    fn deleted_replaced_and_truncated_files_are_noticed_for_good() {
        let dir = scratch();
        let path = database(&dir);
        let guard = FileGuard::new(&path).unwrap();
        assert!(guard.check().is_ok());

        std::fs::remove_file(&path).unwrap();
        assert!(guard.check().unwrap_err().contains("was deleted"));
        // Put back (a new file at the path): still not the one opened.
        database(&dir);
        assert!(guard.check().unwrap_err().contains("was deleted"));

        let guard = FileGuard::new(&path).unwrap();
        let other = dir.join("restored.db");
        std::fs::copy(&path, &other).unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(guard.check().unwrap_err().contains("replaced"));

        let guard = FileGuard::new(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(3)
            .unwrap();
        assert!(guard.check().unwrap_err().contains("truncated"));

        let path = database(&dir);
        let guard = FileGuard::new(&path).unwrap();
        std::fs::write(&path, [0u8; 4096]).unwrap();
        assert!(guard.check().unwrap_err().contains("header"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! One connecting process per data directory: an exclusive `flock` on `connect.lock`. Holding
//! it is what "no tunnel of ours is up" means when a 409 or leftover rows are reconciled. The
//! holder writes who it is (front end and pid) into the file, so a refused front end can say
//! where the session runs.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

/// Held while a session runs; released when dropped (or when the process dies, even by kill -9).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum InstanceLockError {
    /// Another Ferry process holds it.
    #[error("another Ferry session is running with this data directory{}", holder.as_deref().map(|h| format!(" (in {h})")).unwrap_or_default())]
    Busy {
        /// What the holder wrote about itself, e.g. "`ferry connect` (pid 42)".
        holder: Option<String>,
    },
    /// The lock file could not be opened.
    #[error("cannot open the lock file: {0}")]
    Io(#[from] std::io::Error),
}

impl InstanceLock {
    /// Takes the lock in `dir` without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, InstanceLockError> {
        Self::acquire_as(dir, "Ferry")
    }

    /// Takes the lock in `dir` without waiting, recording `who` (a front end's name) and the pid.
    pub fn acquire_as(dir: &Path, who: &str) -> Result<Self, InstanceLockError> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(dir.join("connect.lock"))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                let who: String = who.chars().filter(|c| !c.is_control()).take(80).collect();
                write!(file, "{who} (pid {})", std::process::id())?;
                Ok(Self { _file: file })
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = std::io::Read::take(&mut file, 200).read_to_string(&mut text);
                let holder = Some(text.trim().to_string()).filter(|t| !t.is_empty());
                Err(InstanceLockError::Busy { holder })
            }
            Err(e) => Err(InstanceLockError::Io(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_drops() {
        let dir = std::env::temp_dir().join(format!("ferry-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = InstanceLock::acquire_as(&dir, "the window").unwrap();
        match InstanceLock::acquire(&dir) {
            Err(InstanceLockError::Busy { holder: Some(h) }) => {
                assert_eq!(h, format!("the window (pid {})", std::process::id()))
            }
            other => panic!("expected busy with a holder, got {other:?}"),
        }
        drop(a);
        assert!(InstanceLock::acquire(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

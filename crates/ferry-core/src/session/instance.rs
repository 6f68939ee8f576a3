//! One connecting process per data directory: an exclusive `flock` on `connect.lock`. Holding
//! it is what "no tunnel of ours is up" means when a 409 or leftover rows are reconciled.

use std::fs::{File, OpenOptions};
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
    #[error("another Ferry session is running with this data directory")]
    Busy,
    /// The lock file could not be opened.
    #[error("cannot open the lock file: {0}")]
    Io(#[from] std::io::Error),
}

impl InstanceLock {
    /// Takes the lock in `dir` without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, InstanceLockError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join("connect.lock"))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(InstanceLockError::Busy),
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
        let a = InstanceLock::acquire(&dir).unwrap();
        assert!(matches!(
            InstanceLock::acquire(&dir),
            Err(InstanceLockError::Busy)
        ));
        drop(a);
        assert!(InstanceLock::acquire(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The helper's own journal: the block in force, kept in a directory that survives a reboot so a
//! restarted helper (after `kill -9`, a crash or a reboot) puts the block back, and the routes'
//! and DNS's undo steps (ferry-tunnel's system journal, written to the same directory) are
//! replayed. A user's disconnect removes it. Files not owned by root, or readable or writable
//! by group or others, are ignored: nobody else can plant a policy or an undo step.

use crate::proto::{Label, Policy};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// File name of the helper's state inside the journal directory.
pub const STATE_FILE: &str = "helper-state.json";

/// What the helper must keep enforcing until the user disconnects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The policy in force when written.
    pub policy: Policy,
    /// The session's endpoint.
    pub endpoint: Option<SocketAddr>,
    /// LAN allowed.
    pub allow_lan: bool,
    /// The session's label.
    pub label: Option<Label>,
    /// API servers let through.
    #[serde(default)]
    pub api: Vec<SocketAddr>,
}

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// I/O on the journal.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not trustworthy (owner or mode).
    #[error("{0}: not owned by root or open to others; ignored")]
    Untrusted(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// True if `path` is owned by root (or by us, when we are not root: tests) and has no
/// group/other write bits (and, for files, no group/other bits at all).
pub fn trusted(path: &Path, file: bool) -> bool {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return false;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mask = if file { 0o077 } else { 0o022 };
    !m.file_type().is_symlink() && (m.uid() == 0 || m.uid() == me) && m.mode() & mask == 0
}

/// The journal directory: created 0700 if missing; an error if it is untrusted.
pub fn prepare_dir(dir: &Path) -> Result<(), JournalError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    if trusted(dir, false) {
        Ok(())
    } else {
        Err(JournalError::Untrusted(dir.to_path_buf()))
    }
}

/// Loads the state, if there is a trusted, readable one.
pub fn load(dir: &Path) -> Result<Option<State>, JournalError> {
    let path = dir.join(STATE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    if !trusted(&path, true) {
        return Err(JournalError::Untrusted(path));
    }
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    match serde_json::from_str(&text) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            // Unreadable: fail closed with no endpoint rather than open.
            tracing::warn!(error = %e, path = %path.display(), "corrupt helper journal; blocking");
            Ok(Some(State {
                policy: Policy::TunnelEndpointOnly { endpoint: None },
                endpoint: None,
                allow_lan: false,
                label: None,
                api: Vec::new(),
            }))
        }
    }
}

/// Writes the state atomically (0600, synced).
pub fn save(dir: &Path, state: &State) -> Result<(), JournalError> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(state).map_err(|e| JournalError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Removes the state (a user's disconnect).
pub fn remove(dir: &Path) -> Result<(), JournalError> {
    let path = dir.join(STATE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(JournalError::Io { path, source: e }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state() -> State {
        State {
            policy: Policy::TunnelOnly,
            endpoint: Some("198.18.0.2:51820".parse().unwrap()),
            allow_lan: true,
            label: Some(Label {
                service: "orbnet".into(),
                region: "r".into(),
            }),
            api: vec!["203.0.113.7:443".parse().unwrap()],
        }
    }

    #[test]
    fn saves_loads_and_removes() {
        let d = tempfile::tempdir().unwrap();
        prepare_dir(d.path()).unwrap();
        assert_eq!(load(d.path()).unwrap(), None);
        save(d.path(), &state()).unwrap();
        let m = std::fs::metadata(d.path().join(STATE_FILE)).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
        assert_eq!(load(d.path()).unwrap(), Some(state()));
        remove(d.path()).unwrap();
        remove(d.path()).unwrap();
        assert_eq!(load(d.path()).unwrap(), None);
    }

    #[test]
    fn an_open_file_is_ignored_and_a_corrupt_one_blocks() {
        let d = tempfile::tempdir().unwrap();
        save(d.path(), &state()).unwrap();
        let p = d.path().join(STATE_FILE);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(d.path()), Err(JournalError::Untrusted(_))));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "{ not json").unwrap();
        let s = load(d.path()).unwrap().unwrap();
        assert_eq!(s.policy, Policy::TunnelEndpointOnly { endpoint: None });
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(prepare_dir(&open).is_err());
    }
}

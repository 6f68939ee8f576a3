//! Where the app keeps its files: `$FERRY_DATA_DIR`, else `$XDG_DATA_HOME/ferry`, else
//! `~/.local/share/ferry`; created with mode 0700.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The app's private data directory (created if missing).
pub fn data_dir() -> std::io::Result<PathBuf> {
    let dir = if let Some(d) = std::env::var_os("FERRY_DATA_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        PathBuf::from(d).join("ferry")
    } else if let Some(h) = std::env::var_os("HOME") {
        PathBuf::from(h).join(".local/share/ferry")
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "neither FERRY_DATA_DIR, XDG_DATA_HOME nor HOME is set",
        ));
    };
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

//! Where Ferry keeps its files, and how they are created private (directory 0700, files 0600).

use std::path::{Path, PathBuf};

/// A file-system problem with Ferry's own files.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// No data directory could be worked out (no `FERRY_DATA_DIR`, `XDG_DATA_HOME` or `HOME`).
    #[error("cannot work out a data directory: set FERRY_DATA_DIR")]
    NoDataDir,
    /// Creating or securing a file or directory failed.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PathError + '_ {
    move |source| PathError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The data directory from explicit values: `explicit` (e.g. `--data-dir`), else `FERRY_DATA_DIR`,
/// else `$XDG_DATA_HOME/ferry`, else `$HOME/.local/share/ferry`. `env` looks up a variable.
pub fn data_dir_from(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PathBuf, PathError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let Some(p) = nonempty("FERRY_DATA_DIR") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = nonempty("XDG_DATA_HOME") {
        return Ok(PathBuf::from(p).join("ferry"));
    }
    if let Some(h) = nonempty("HOME") {
        return Ok(PathBuf::from(h).join(".local/share/ferry"));
    }
    Err(PathError::NoDataDir)
}

/// [`data_dir_from`] with the process environment.
pub fn data_dir(explicit: Option<&Path>) -> Result<PathBuf, PathError> {
    data_dir_from(explicit, |k| std::env::var(k).ok())
}

/// The tunnelbyte CLI's token file: `$XDG_CONFIG_HOME/tunnelbyte/token`, else
/// `$HOME/.config/tunnelbyte/token`.
pub fn tunnelbyte_cli_token_from(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let Some(p) = nonempty("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(p).join("tunnelbyte/token"));
    }
    nonempty("HOME").map(|h| PathBuf::from(h).join(".config/tunnelbyte/token"))
}

/// Creates `dir` (and parents) if missing and sets it to mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PathError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    Ok(())
}

/// Creates `file` empty if missing (never truncating) and sets it to mode 0600.
pub fn ensure_private_file(file: &Path) -> Result<(), PathError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(file).map_err(io_err(file))?;
    set_private(file)
}

/// Sets an existing file to mode 0600 (no-op elsewhere than Unix; missing files are ignored).
pub fn set_private(file: &Path) -> Result<(), PathError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(file)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn data_dir_precedence() {
        let e = env(&[
            ("FERRY_DATA_DIR", "/a"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            data_dir_from(Some(Path::new("/cli")), &e).unwrap(),
            PathBuf::from("/cli")
        );
        assert_eq!(data_dir_from(None, &e).unwrap(), PathBuf::from("/a"));
        let e = env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(data_dir_from(None, &e).unwrap(), PathBuf::from("/x/ferry"));
        let e = env(&[("HOME", "/h")]);
        assert_eq!(
            data_dir_from(None, &e).unwrap(),
            PathBuf::from("/h/.local/share/ferry")
        );
        assert!(matches!(
            data_dir_from(None, env(&[])),
            Err(PathError::NoDataDir)
        ));
    }

    #[test]
    fn tunnelbyte_token_path() {
        let e = env(&[("XDG_CONFIG_HOME", "/c"), ("HOME", "/h")]);
        assert_eq!(
            tunnelbyte_cli_token_from(e).unwrap(),
            PathBuf::from("/c/tunnelbyte/token")
        );
        let e = env(&[("HOME", "/h")]);
        assert_eq!(
            tunnelbyte_cli_token_from(e).unwrap(),
            PathBuf::from("/h/.config/tunnelbyte/token")
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let f = dir.join("f");
        std::fs::write(&f, b"keep").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_private_file(&f).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"keep");
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

//! Damaged history databases: the check run before opening, and moving a damaged file aside
//! (`<name>.corrupt-<UTC timestamp>`, 0600) so a fresh database can start in its place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use super::StoreError;
use crate::paths::{set_private, PathError};

/// Checks that `path` is a sound SQLite database: `Ok` for an empty or healthy file,
/// [`StoreError::Corrupt`] when it is not a database or fails `PRAGMA integrity_check`,
/// [`StoreError::Busy`] when another connection holds it locked past `busy_timeout`.
pub(super) async fn check(path: &Path, busy_timeout: Duration) -> Result<(), StoreError> {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Ok(());
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(busy_timeout)
        .connect()
        .await?;
    let problems: Result<Vec<String>, sqlx::Error> =
        sqlx::query_scalar("PRAGMA integrity_check(20)")
            .fetch_all(&mut conn)
            .await;
    let _ = conn.close().await;
    match problems {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(()),
        Ok(rows) => Err(StoreError::Corrupt(format!(
            "integrity check failed: {}",
            rows.join("; ")
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The name a damaged database is moved to: `<path>.corrupt-<YYYYmmddTHHMMSSZ>`, with `-N`
/// appended when that name is taken.
pub(super) fn quarantine_path(path: &Path, now: DateTime<Utc>) -> PathBuf {
    let base = format!(
        "{}.corrupt-{}",
        path.display(),
        now.format("%Y%m%dT%H%M%SZ")
    );
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

/// Moves `path` (and its `-wal`, so it is never replayed into the fresh database) aside and
/// removes its `-shm`; returns where the database went. The moved files are 0600.
pub(super) fn move_aside(path: &Path, now: DateTime<Utc>) -> Result<PathBuf, PathError> {
    let dest = quarantine_path(path, now);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PathError::Io { path: p, source }
    };
    std::fs::rename(path, &dest).map_err(io(path))?;
    set_private(&dest)?;
    let wal = with_suffix(path, "-wal");
    if wal.exists() {
        let wal_dest = with_suffix(&dest, "-wal");
        std::fs::rename(&wal, &wal_dest).map_err(io(&wal))?;
        set_private(&wal_dest)?;
    }
    let shm = with_suffix(path, "-shm");
    match std::fs::remove_file(&shm) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&shm)(e)),
    }
    Ok(dest)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn quarantine_names_are_timestamped_and_never_clobber() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("history.db");
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 30, 5).unwrap();
        let first = quarantine_path(&db, at);
        assert_eq!(
            first.file_name().unwrap().to_str().unwrap(),
            "history.db.corrupt-20260301T123005Z"
        );
        std::fs::write(&first, b"x").unwrap();
        let second = quarantine_path(&db, at);
        assert_eq!(
            second.file_name().unwrap().to_str().unwrap(),
            "history.db.corrupt-20260301T123005Z-1"
        );
    }
}

//! Session history in SQLite (sqlx): embedded migrations, WAL, a busy timeout, a private data
//! directory (0700) and database files (0600).
//!
//! The session row is written *before* the server is asked to start (so a crash between the
//! request and its answer can be reconciled), marked connected, updated with usage samples, and
//! closed with a reason. [`Store::open_sessions`] lists rows a crash left open; the supervisor
//! reconciles them with the server and closes them with [`EndReason::Recovered`].

mod export;
mod quarantine;
mod types;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

pub use types::*;

use crate::paths::{ensure_private_dir, ensure_private_file, set_private, PathError};
use crate::services::ServiceKind;
use crate::timefmt::{from_unix_ms, to_unix_ms};

/// The database file name inside the data directory.
pub const DB_FILE: &str = "history.db";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another connection held the write lock for longer than the busy timeout.
    #[error("the history database is busy (locked by another process); try again")]
    Busy,
    /// The file is not a database or is damaged.
    #[error("the history database is damaged: {0}")]
    Corrupt(String),
    /// Preparing the directory or file failed.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A migration failed (e.g. a newer or edited schema).
    #[error("cannot update the history database schema: {0}")]
    Migrate(String),
    /// No row with this id.
    #[error("no session row {0}")]
    NotFound(i64),
    /// A value in the database could not be read.
    #[error("unreadable value in the history database: {0}")]
    Decode(String),
    /// Writing the CSV export failed.
    #[error("cannot write the CSV export: {0}")]
    Export(String),
    /// Any other database error.
    #[error("history database error: {0}")]
    Db(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => {
                let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(-1);
                match code & 0xff {
                    5 | 6 => StoreError::Busy,
                    11 | 26 => StoreError::Corrupt(db.message().to_string()),
                    _ if db.message().contains("database is locked") => StoreError::Busy,
                    _ => StoreError::Db(db.message().to_string()),
                }
            }
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Decode(e.to_string())
            }
            _ => StoreError::Db(e.to_string()),
        }
    }
}

/// Open options.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a write waits for another connection's lock before [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// Pool size.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            max_connections: 4,
        }
    }
}

/// The history store. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    quarantined: Option<PathBuf>,
    /// The clock the session rows are stamped with (the system's unless injected).
    clock: crate::clock::SharedClock,
}

fn ms(t: DateTime<Utc>) -> i64 {
    to_unix_ms(t)
}

fn opt_u64(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (creating if needed) `history.db` in `data_dir` with default options.
    pub async fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open(&data_dir.join(DB_FILE), StoreOptions::default()).await
    }

    /// Opens (creating if needed) the database at `path`: parent 0700, files 0600, WAL,
    /// `synchronous=NORMAL`, busy timeout, foreign keys, migrations applied.
    ///
    /// A file that is not a database, or that fails `PRAGMA integrity_check`, is moved aside to
    /// `<name>.corrupt-<UTC timestamp>` (0600, with its `-wal`), a warning is logged, and a fresh
    /// database is started; [`Store::quarantined`] tells where the old one went. A database
    /// locked by another process is never moved: that is [`StoreError::Busy`].
    pub async fn open(path: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            ensure_private_dir(parent)?;
        }
        ensure_private_file(path)?;
        let quarantined = match quarantine::check(path, opts.busy_timeout).await {
            Ok(()) => None,
            Err(StoreError::Corrupt(why)) => {
                let moved = quarantine::move_aside(path, chrono::Utc::now())?;
                tracing::warn!(
                    path = %path.display(),
                    moved_to = %moved.display(),
                    reason = %why,
                    "history database damaged: moved aside, starting a fresh one"
                );
                ensure_private_file(path)?;
                Some(moved)
            }
            Err(e) => return Err(e),
        };
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.busy_timeout + Duration::from_secs(5))
            .connect_with(connect)
            .await?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => match StoreError::from(inner) {
                StoreError::Db(m) => StoreError::Migrate(m),
                other => other,
            },
            other => StoreError::Migrate(other.to_string()),
        })?;
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            set_private(Path::new(&p))?;
        }
        tracing::debug!(path = %path.display(), "history store open");
        Ok(Self {
            pool,
            path: path.to_path_buf(),
            quarantined,
            clock: crate::clock::SystemClock::shared(),
        })
    }

    /// The same store stamping the rows it writes for sessions (connected, acks, usage, end)
    /// with `clock`'s wall time: history is testable on a manual clock, without sleeping.
    pub fn with_clock(mut self, clock: crate::clock::SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, on the store's clock.
    pub fn wall_now(&self) -> DateTime<Utc> {
        self.clock.wall()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a damaged database found at open was moved (`<name>.corrupt-<timestamp>`), if one
    /// was: the window and CLI can tell the user their old history is there.
    pub fn quarantined(&self) -> Option<&Path> {
        self.quarantined.as_deref()
    }

    /// Closes the pool (waits for connections to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts the row of a session about to start; call before the start request.
    pub async fn insert_session(&self, new: &NewSession) -> Result<SessionRowId, StoreError> {
        let r = sqlx::query(
            "INSERT INTO sessions (client_session_id, service, account, location, started_at_ms, state)
             VALUES (?, ?, ?, ?, ?, 'starting')",
        )
        .bind(&new.client_session_id)
        .bind(new.service.as_str())
        .bind(&new.account)
        .bind(&new.location)
        .bind(ms(new.started_at))
        .execute(&self.pool)
        .await?;
        Ok(r.last_insert_rowid())
    }

    /// Records the server's id for the session (tunnelbyte's `id`, OrbNET's `tracking_id`) and the
    /// exit IP.
    pub async fn set_server_session(
        &self,
        id: SessionRowId,
        server_session_id: &str,
        exit_ip: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE sessions SET server_session_id = ?, exit_ip = COALESCE(?, exit_ip) WHERE id = ?",
        )
        .bind(server_session_id)
        .bind(exit_ip)
        .bind(id)
        .execute(&self.pool)
        .await?;
        found(r.rows_affected(), id)
    }

    /// Marks the session connected (the meter starts now).
    pub async fn mark_connected(
        &self,
        id: SessionRowId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE sessions SET state = 'connected', connected_at_ms = ?, last_ack_at_ms = ?
             WHERE id = ? AND state <> 'ended'",
        )
        .bind(ms(at))
        .bind(ms(at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        found(r.rows_affected(), id)
    }

    /// Records an acknowledged heartbeat (wall time, for post-reboot recovery estimates).
    pub async fn record_ack(&self, id: SessionRowId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE sessions SET last_ack_at_ms = ? WHERE id = ?")
            .bind(ms(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        found(r.rows_affected(), id)
    }

    /// Updates the running totals and appends a usage sample, in one write transaction.
    pub async fn update_usage(&self, id: SessionRowId, u: &UsageUpdate) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let r = sqlx::query(
            "UPDATE sessions SET
               bytes_in = COALESCE(?, bytes_in),
               bytes_out = COALESCE(?, bytes_out),
               credits_remaining = COALESCE(?, credits_remaining),
               credits_used = COALESCE(?, credits_used),
               cost_millicents = COALESCE(?, cost_millicents),
               cost_currency = COALESCE(?, cost_currency)
             WHERE id = ?",
        )
        .bind(opt_u64(u.bytes_in))
        .bind(opt_u64(u.bytes_out))
        .bind(u.credits_remaining)
        .bind(u.credits_used)
        .bind(opt_u64(u.cost_millicents))
        .bind(&u.cost_currency)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        found(r.rows_affected(), id)?;
        sqlx::query(
            "INSERT INTO usage_samples (session_row, at_ms, bytes_in, bytes_out, credits_remaining,
               credits_used, cost_millicents, quota_bytes_used, quota_bytes_limit,
               quota_seconds_used, quota_seconds_limit)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(ms(u.at))
        .bind(opt_u64(u.bytes_in))
        .bind(opt_u64(u.bytes_out))
        .bind(u.credits_remaining)
        .bind(u.credits_used)
        .bind(opt_u64(u.cost_millicents))
        .bind(opt_u64(u.quota_bytes_used))
        .bind(opt_u64(u.quota_bytes_limit))
        .bind(opt_u64(u.quota_seconds_used))
        .bind(opt_u64(u.quota_seconds_limit))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the session with a reason and final totals (fields left `None` keep their value).
    /// Closing an already closed row changes nothing and returns false.
    pub async fn close_session(
        &self,
        id: SessionRowId,
        close: &SessionClose,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE sessions SET state = 'ended', ended_at_ms = ?, end_reason = ?,
               credits_used = COALESCE(?, credits_used),
               credits_remaining = COALESCE(?, credits_remaining),
               cost_millicents = COALESCE(?, cost_millicents),
               bytes_in = COALESCE(?, bytes_in),
               bytes_out = COALESCE(?, bytes_out)
             WHERE id = ? AND state <> 'ended'",
        )
        .bind(ms(close.ended_at))
        .bind(close.reason.as_str())
        .bind(close.credits_used)
        .bind(close.credits_remaining)
        .bind(opt_u64(close.cost_millicents))
        .bind(opt_u64(close.bytes_in))
        .bind(opt_u64(close.bytes_out))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(true);
        }
        self.session(id).await?.ok_or(StoreError::NotFound(id))?;
        Ok(false)
    }

    /// Records the tunnel's final byte counts, whatever the row's state (a row is closed while
    /// its tunnel still runs; the counts are final only once it is down).
    pub async fn set_traffic(
        &self,
        id: SessionRowId,
        bytes_in: u64,
        bytes_out: u64,
    ) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE sessions SET bytes_in = ?, bytes_out = ? WHERE id = ?")
            .bind(opt_u64(Some(bytes_in)))
            .bind(opt_u64(Some(bytes_out)))
            .bind(id)
            .execute(&self.pool)
            .await?;
        found(r.rows_affected(), id)
    }

    /// One row.
    pub async fn session(&self, id: SessionRowId) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_SESSION} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    /// The row with our client session id (OrbNET `session_id`).
    pub async fn session_by_client_id(
        &self,
        client_session_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_SESSION} WHERE client_session_id = ?"))
            .bind(client_session_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    /// The most recent row of `service` with this server session id.
    pub async fn session_by_server_id(
        &self,
        service: ServiceKind,
        server_session_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "{SELECT_SESSION} WHERE service = ? AND server_session_id = ? ORDER BY id DESC LIMIT 1"
        ))
        .bind(service.as_str())
        .bind(server_session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    /// Rows not ended (left open by a crash, or live), oldest first.
    pub async fn open_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_SESSION} WHERE state <> 'ended' ORDER BY id ASC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// A page of history, newest first.
    pub async fn history(&self, q: &HistoryQuery) -> Result<Vec<SessionRecord>, StoreError> {
        let limit = i64::from(q.limit.clamp(1, 10_000));
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        let rows = match q.service {
            Some(s) => {
                sqlx::query(&format!(
                    "{SELECT_SESSION} WHERE service = ? ORDER BY started_at_ms DESC, id DESC LIMIT ? OFFSET ?"
                ))
                .bind(s.as_str())
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{SELECT_SESSION} ORDER BY started_at_ms DESC, id DESC LIMIT ? OFFSET ?"
                ))
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(session_from_row).collect()
    }

    /// Number of session rows.
    pub async fn count_sessions(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Usage samples of a session, oldest first.
    pub async fn samples(&self, id: SessionRowId) -> Result<Vec<UsageSample>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, bytes_in, bytes_out, credits_remaining, credits_used, cost_millicents,
                    quota_bytes_used, quota_bytes_limit, quota_seconds_used, quota_seconds_limit
             FROM usage_samples WHERE session_row = ? ORDER BY at_ms ASC, id ASC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageSample {
                    at: from_unix_ms(r.try_get("at_ms")?),
                    bytes_in: get_u64(r, "bytes_in")?,
                    bytes_out: get_u64(r, "bytes_out")?,
                    credits_remaining: r.try_get("credits_remaining")?,
                    credits_used: r.try_get("credits_used")?,
                    cost_millicents: get_u64(r, "cost_millicents")?,
                    quota_bytes_used: get_u64(r, "quota_bytes_used")?,
                    quota_bytes_limit: get_u64(r, "quota_bytes_limit")?,
                    quota_seconds_used: get_u64(r, "quota_seconds_used")?,
                    quota_seconds_limit: get_u64(r, "quota_seconds_limit")?,
                })
            })
            .collect()
    }

    /// Totals per UTC day and service (newest day first).
    pub async fn totals_per_day(&self) -> Result<Vec<DailyTotal>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT date(started_at_ms / 1000, 'unixepoch') AS day, {TOTAL_COLUMNS}
             FROM sessions GROUP BY day, service ORDER BY day DESC, service ASC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DailyTotal {
                    day: r.try_get("day")?,
                    totals: totals_from_row(r)?,
                })
            })
            .collect()
    }

    /// What one service's sessions started in `[from, to)` spent: credits used and cost in
    /// millicents (the spend caps' day and month totals; a session counts where it started).
    pub async fn spent_between(
        &self,
        service: ServiceKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Spent, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(credits_used), 0.0) AS credits_used,
                    COALESCE(SUM(cost_millicents), 0) AS cost_millicents
             FROM sessions WHERE service = ? AND started_at_ms >= ? AND started_at_ms < ?",
        )
        .bind(service.as_str())
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(Spent {
            credits: row.try_get::<f64, _>("credits_used")?,
            millicents: get_u64(&row, "cost_millicents")?.unwrap_or(0),
        })
    }

    /// Totals per service over the whole history.
    pub async fn totals_per_service(&self) -> Result<Vec<Totals>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOTAL_COLUMNS} FROM sessions GROUP BY service ORDER BY service ASC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(totals_from_row).collect()
    }

    /// Writes the whole history as CSV (newest first) to `out`.
    pub async fn export_csv<W: std::io::Write>(&self, out: W) -> Result<u64, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_SESSION} ORDER BY started_at_ms DESC, id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        let records: Vec<SessionRecord> = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<_, _>>()?;
        export::write_csv(out, &records)
    }

    /// Writes the CSV export to a new private (0600) file at `path`, replacing it.
    pub async fn export_csv_file(&self, path: &Path) -> Result<u64, StoreError> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(path)
            .map_err(|e| StoreError::Export(format!("{}: {e}", path.display())))?;
        self.export_csv(std::io::BufWriter::new(file)).await
    }

    /// Records a NeoSC workspace session as seen now (insert or update).
    pub async fn upsert_workspace_session(
        &self,
        s: &WorkspaceSessionSeen,
        seen_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO workspace_sessions (id, account, workspace_id, workspace_name, workspace_type,
               status, started_at_ms, ended_at_ms, launched_here, first_seen_ms, last_seen_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET
               status = excluded.status,
               ended_at_ms = COALESCE(excluded.ended_at_ms, ended_at_ms),
               workspace_name = COALESCE(excluded.workspace_name, workspace_name),
               launched_here = MAX(launched_here, excluded.launched_here),
               last_seen_ms = excluded.last_seen_ms",
        )
        .bind(&s.id)
        .bind(&s.account)
        .bind(&s.workspace_id)
        .bind(&s.workspace_name)
        .bind(&s.workspace_type)
        .bind(&s.status)
        .bind(s.started_at.map(ms))
        .bind(s.ended_at.map(ms))
        .bind(s.launched_here)
        .bind(ms(seen_at))
        .bind(ms(seen_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Workspace sessions seen, most recently seen first.
    pub async fn workspace_sessions(&self) -> Result<Vec<WorkspaceSessionSeen>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account, workspace_id, workspace_name, workspace_type, status,
                    started_at_ms, ended_at_ms, launched_here
             FROM workspace_sessions ORDER BY last_seen_ms DESC, id ASC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkspaceSessionSeen {
                    id: r.try_get("id")?,
                    account: r.try_get("account")?,
                    workspace_id: r.try_get("workspace_id")?,
                    workspace_name: r.try_get("workspace_name")?,
                    workspace_type: r.try_get("workspace_type")?,
                    status: r.try_get("status")?,
                    started_at: r
                        .try_get::<Option<i64>, _>("started_at_ms")?
                        .map(from_unix_ms),
                    ended_at: r
                        .try_get::<Option<i64>, _>("ended_at_ms")?
                        .map(from_unix_ms),
                    launched_here: r.try_get("launched_here")?,
                })
            })
            .collect()
    }

    /// A setting's value.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets a setting (never a secret).
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a setting; true when it existed.
    pub async fn delete_setting(&self, key: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM settings WHERE key = ?")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

fn found(rows: u64, id: SessionRowId) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound(id))
    } else {
        Ok(())
    }
}

const SELECT_SESSION: &str = "SELECT id, client_session_id, service, account, location,
    server_session_id, state, started_at_ms, connected_at_ms, last_ack_at_ms, ended_at_ms,
    end_reason, credits_used, credits_remaining, cost_millicents, cost_currency, bytes_in,
    bytes_out, exit_ip FROM sessions";

const TOTAL_COLUMNS: &str = "service,
    COUNT(*) AS sessions,
    COALESCE(SUM(CASE WHEN connected_at_ms IS NOT NULL AND ended_at_ms IS NOT NULL
        AND ended_at_ms > connected_at_ms THEN (ended_at_ms - connected_at_ms) / 1000 ELSE 0 END), 0)
        AS connected_secs,
    COALESCE(SUM(credits_used), 0.0) AS credits_used,
    COALESCE(SUM(cost_millicents), 0) AS cost_millicents,
    COALESCE(SUM(bytes_in), 0) AS bytes_in,
    COALESCE(SUM(bytes_out), 0) AS bytes_out";

fn get_u64(r: &SqliteRow, col: &str) -> Result<Option<u64>, sqlx::Error> {
    Ok(r.try_get::<Option<i64>, _>(col)?
        .map(|v| u64::try_from(v).unwrap_or(0)))
}

fn service_from(s: &str) -> Result<ServiceKind, StoreError> {
    ServiceKind::from_str(s).map_err(|e| StoreError::Decode(e.to_string()))
}

fn session_from_row(r: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let service: String = r.try_get("service")?;
    let state: String = r.try_get("state")?;
    Ok(SessionRecord {
        id: r.try_get("id")?,
        client_session_id: r.try_get("client_session_id")?,
        service: service_from(&service)?,
        account: r.try_get("account")?,
        location: r.try_get("location")?,
        server_session_id: r.try_get("server_session_id")?,
        state: SessionState::parse(&state)
            .ok_or_else(|| StoreError::Decode(format!("unknown state {state:?}")))?,
        started_at: from_unix_ms(r.try_get("started_at_ms")?),
        connected_at: r
            .try_get::<Option<i64>, _>("connected_at_ms")?
            .map(from_unix_ms),
        last_ack_at: r
            .try_get::<Option<i64>, _>("last_ack_at_ms")?
            .map(from_unix_ms),
        ended_at: r
            .try_get::<Option<i64>, _>("ended_at_ms")?
            .map(from_unix_ms),
        end_reason: r
            .try_get::<Option<String>, _>("end_reason")?
            .map(|s| EndReason::parse(&s)),
        credits_used: r.try_get("credits_used")?,
        credits_remaining: r.try_get("credits_remaining")?,
        cost_millicents: get_u64(r, "cost_millicents")?,
        cost_currency: r.try_get("cost_currency")?,
        bytes_in: get_u64(r, "bytes_in")?.unwrap_or(0),
        bytes_out: get_u64(r, "bytes_out")?.unwrap_or(0),
        exit_ip: r.try_get("exit_ip")?,
    })
}

fn totals_from_row(r: &SqliteRow) -> Result<Totals, StoreError> {
    let service: String = r.try_get("service")?;
    Ok(Totals {
        service: service_from(&service)?,
        sessions: get_u64(r, "sessions")?.unwrap_or(0),
        connected_secs: get_u64(r, "connected_secs")?.unwrap_or(0),
        credits_used: r.try_get("credits_used")?,
        cost_millicents: get_u64(r, "cost_millicents")?.unwrap_or(0),
        bytes_in: get_u64(r, "bytes_in")?.unwrap_or(0),
        bytes_out: get_u64(r, "bytes_out")?.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;

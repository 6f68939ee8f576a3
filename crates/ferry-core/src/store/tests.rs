//! Store tests on real SQLite files in temp dirs.

use std::time::{Duration, Instant};

use chrono::TimeZone;
use sqlx::{ConnectOptions, Connection};

use super::*;

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 8, h, m, s).unwrap()
}

fn new(service: ServiceKind, id: &str, at: DateTime<Utc>) -> NewSession {
    NewSession {
        client_session_id: id.to_string(),
        service,
        account: Some("demo@orbnet.test".into()),
        location: Some("101".into()),
        started_at: at,
    }
}

async fn open(dir: &Path, busy: Duration) -> Store {
    Store::open(
        &dir.join("data").join(DB_FILE),
        StoreOptions {
            busy_timeout: busy,
            max_connections: 2,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn session_lifecycle_history_totals_and_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), Duration::from_secs(5)).await;

    let a = store
        .insert_session(&new(ServiceKind::Orbnet, "uuid-a", t(10, 0, 0)))
        .await
        .unwrap();
    let open_rows = store.open_sessions().await.unwrap();
    assert_eq!(open_rows.len(), 1);
    assert_eq!(open_rows[0].state, SessionState::Starting);

    store.mark_connected(a, t(10, 0, 5)).await.unwrap();
    store.set_server_session(a, "uuid-a", None).await.unwrap();
    let mut u = UsageUpdate::at(t(10, 1, 5));
    u.credits_remaining = Some(4998.5);
    u.credits_used = Some(1.5);
    store.update_usage(a, &u).await.unwrap();
    store.record_ack(a, t(10, 1, 5)).await.unwrap();
    let mut close = SessionClose::new(t(10, 30, 5), EndReason::UserInitiated);
    close.credits_used = Some(45.0);
    assert!(store.close_session(a, &close).await.unwrap());
    // Closing twice keeps the first close.
    let again = SessionClose::new(t(11, 0, 0), EndReason::Error);
    assert!(!store.close_session(a, &again).await.unwrap());

    let b = store
        .insert_session(&new(ServiceKind::Tunnelbyte, "uuid-b", t(12, 0, 0)))
        .await
        .unwrap();
    store.mark_connected(b, t(12, 0, 1)).await.unwrap();
    store
        .set_server_session(b, "tb-sess-1", Some("198.51.100.7"))
        .await
        .unwrap();
    let mut u = UsageUpdate::at(t(12, 0, 11));
    u.bytes_in = Some(1_000_000);
    u.bytes_out = Some(20_000);
    u.cost_millicents = Some(21_037);
    u.cost_currency = Some("eur".into());
    u.quota_bytes_used = Some(5);
    u.quota_bytes_limit = Some(0);
    store.update_usage(b, &u).await.unwrap();

    let open_rows = store.open_sessions().await.unwrap();
    assert_eq!(open_rows.len(), 1, "only the tunnelbyte row is still open");
    assert_eq!(open_rows[0].id, b);
    assert_eq!(open_rows[0].exit_ip.as_deref(), Some("198.51.100.7"));
    let found = store
        .session_by_server_id(ServiceKind::Tunnelbyte, "tb-sess-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, b);
    assert_eq!(
        store
            .session_by_client_id("uuid-a")
            .await
            .unwrap()
            .unwrap()
            .id,
        a
    );

    store
        .close_session(b, &SessionClose::new(t(12, 21, 1), EndReason::Recovered))
        .await
        .unwrap();

    let rows = store.history(&HistoryQuery::default()).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, b, "newest first");
    let ra = &rows[1];
    assert_eq!(ra.end_reason, Some(EndReason::UserInitiated));
    assert_eq!(ra.credits_used, Some(45.0));
    assert_eq!(ra.credits_remaining, Some(4998.5));
    assert_eq!(ra.connected_secs(t(23, 0, 0)), Some(1800));
    let page2 = store
        .history(&HistoryQuery {
            limit: 1,
            offset: 1,
            service: None,
        })
        .await
        .unwrap();
    assert_eq!(page2.len(), 1);
    assert_eq!(page2[0].id, a);
    let only_tb = store
        .history(&HistoryQuery {
            service: Some(ServiceKind::Tunnelbyte),
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(only_tb.len(), 1);

    let samples = store.samples(b).await.unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].quota_bytes_limit, Some(0));

    let per_service = store.totals_per_service().await.unwrap();
    assert_eq!(per_service.len(), 2);
    let orb = per_service
        .iter()
        .find(|x| x.service == ServiceKind::Orbnet)
        .unwrap();
    assert_eq!((orb.sessions, orb.connected_secs), (1, 1800));
    assert_eq!(orb.credits_used, 45.0);
    let tb = per_service
        .iter()
        .find(|x| x.service == ServiceKind::Tunnelbyte)
        .unwrap();
    assert_eq!(
        (tb.cost_millicents, tb.bytes_in, tb.connected_secs),
        (21_037, 1_000_000, 1260)
    );
    let per_day = store.totals_per_day().await.unwrap();
    assert_eq!(per_day.len(), 2);
    assert!(per_day.iter().all(|d| d.day == "2026-02-08"));

    let mut csv_out = Vec::new();
    assert_eq!(store.export_csv(&mut csv_out).await.unwrap(), 2);
    let text = String::from_utf8(csv_out).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("id,service,account"));
    let tb_line = lines.next().unwrap();
    assert!(tb_line.contains("tunnelbyte"), "{tb_line}");
    assert!(
        tb_line.contains(",21037,0.21037,eur,1000000,20000,198.51.100.7"),
        "{tb_line}"
    );
    assert!(tb_line.contains(",recovered,"), "{tb_line}");
    let orb_line = lines.next().unwrap();
    assert!(orb_line.contains(",1800,user_initiated,45,"), "{orb_line}");

    let csv_path = tmp.path().join("out.csv");
    assert_eq!(store.export_csv_file(&csv_path).await.unwrap(), 2);
    let mut rdr = csv::Reader::from_path(&csv_path).unwrap();
    assert_eq!(rdr.records().count(), 2);

    // Reopening finds the same rows (migrations are idempotent).
    store.close().await;
    let store = open(tmp.path(), Duration::from_secs(5)).await;
    assert_eq!(store.count_sessions().await.unwrap(), 2);
}

#[tokio::test]
async fn duplicate_client_id_and_unknown_rows_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), Duration::from_secs(1)).await;
    store
        .insert_session(&new(ServiceKind::Orbnet, "dup", t(1, 0, 0)))
        .await
        .unwrap();
    let e = store
        .insert_session(&new(ServiceKind::Orbnet, "dup", t(1, 0, 0)))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Db(_)), "{e:?}");
    assert!(matches!(
        store.mark_connected(999, t(1, 0, 0)).await,
        Err(StoreError::NotFound(999))
    ));
    assert!(matches!(
        store
            .close_session(999, &SessionClose::new(t(1, 0, 0), EndReason::Error))
            .await,
        Err(StoreError::NotFound(999))
    ));
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), Duration::from_secs(1)).await;
    store
        .insert_session(&new(ServiceKind::Neosc, "p", t(1, 0, 0)))
        .await
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tmp.path().join("data")), 0o700);
    let db = tmp.path().join("data").join(DB_FILE);
    assert_eq!(mode(&db), 0o600);
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        assert!(p.exists(), "WAL mode should create {}", p.display());
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
}

async fn locker(db: &Path) -> sqlx::SqliteConnection {
    let mut c = SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_millis(0))
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO settings (key, value) VALUES ('lock', 'held')")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

#[tokio::test]
async fn locked_database_gives_busy_then_succeeds_without_losing_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), Duration::from_millis(200)).await;
    let db = store.path().to_path_buf();
    let mut other = locker(&db).await;

    let started = Instant::now();
    let e = store
        .insert_session(&new(ServiceKind::Orbnet, "while-locked", t(2, 0, 0)))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(e, StoreError::Busy), "{e:?}");
    assert!(
        waited >= Duration::from_millis(150),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    // Reads still work under WAL while another connection writes.
    assert_eq!(store.count_sessions().await.unwrap(), 0);

    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    other.close().await.unwrap();

    let id = store
        .insert_session(&new(ServiceKind::Orbnet, "while-locked", t(2, 0, 0)))
        .await
        .unwrap();
    assert!(store.session(id).await.unwrap().is_some());
    assert_eq!(
        store.setting("lock").await.unwrap().as_deref(),
        Some("held")
    );
    assert_eq!(store.count_sessions().await.unwrap(), 1);
}

#[tokio::test]
async fn write_waits_for_a_short_lock_within_busy_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), Duration::from_secs(5)).await;
    let id = store
        .insert_session(&new(ServiceKind::Tunnelbyte, "x", t(3, 0, 0)))
        .await
        .unwrap();
    let db = store.path().to_path_buf();
    let mut other = locker(&db).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(async move {
        let _ = rx.await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut other).await.unwrap();
        other.close().await.unwrap();
    });
    let started = Instant::now();
    let _ = tx.send(());
    let mut u = UsageUpdate::at(t(3, 0, 10));
    u.bytes_in = Some(42);
    store.update_usage(id, &u).await.unwrap();
    let waited = started.elapsed();
    holder.await.unwrap();
    assert!(
        waited >= Duration::from_millis(250),
        "did not wait: {waited:?}"
    );
    assert_eq!(store.session(id).await.unwrap().unwrap().bytes_in, 42);
    assert_eq!(store.samples(id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn settings_and_workspace_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), Duration::from_secs(1)).await;
    assert_eq!(store.setting("device_id").await.unwrap(), None);
    store.set_setting("device_id", "d1").await.unwrap();
    store.set_setting("device_id", "d2").await.unwrap();
    assert_eq!(
        store.setting("device_id").await.unwrap().as_deref(),
        Some("d2")
    );
    assert!(store.delete_setting("device_id").await.unwrap());
    assert!(!store.delete_setting("device_id").await.unwrap());

    let mut seen = WorkspaceSessionSeen {
        id: "f47ac10b".into(),
        account: Some("alice@neosc.test".into()),
        workspace_id: "ws-linux-desktop".into(),
        workspace_name: Some("Linux Desktop".into()),
        workspace_type: Some("linux".into()),
        status: "active".into(),
        started_at: Some(t(9, 0, 0)),
        ended_at: None,
        launched_here: true,
    };
    store
        .upsert_workspace_session(&seen, t(9, 0, 1))
        .await
        .unwrap();
    seen.status = "disconnected".into();
    seen.ended_at = Some(t(9, 30, 0));
    seen.launched_here = false;
    store
        .upsert_workspace_session(&seen, t(9, 30, 1))
        .await
        .unwrap();
    let all = store.workspace_sessions().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, "disconnected");
    assert_eq!(all[0].ended_at, Some(t(9, 30, 0)));
    assert!(all[0].launched_here, "launched_here is sticky");
}

fn quarantined_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("history.db.corrupt-") && !n.ends_with("-wal"))
        })
        .collect();
    v.sort();
    v
}

/// Opens the store on a damaged file: it must move the file aside (same bytes, 0600) and
/// start a fresh, working database.
async fn assert_quarantined_and_fresh(db: &Path, damaged: &[u8]) {
    let store = Store::open(db, StoreOptions::default()).await.unwrap();
    let dir = db.parent().unwrap();
    let moved = quarantined_files(dir);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(store.quarantined(), Some(moved[0].as_path()));
    assert_eq!(
        std::fs::read(&moved[0]).unwrap(),
        damaged,
        "moved as it was"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&moved[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(store.count_sessions().await.unwrap(), 0, "a fresh database");
    let id = store
        .insert_session(&new(ServiceKind::Orbnet, "after", t(4, 0, 0)))
        .await
        .unwrap();
    assert!(store.session(id).await.unwrap().is_some());
    store.close().await;
    // The fresh database opens cleanly next time: nothing else is moved.
    let again = Store::open(db, StoreOptions::default()).await.unwrap();
    assert_eq!(again.quarantined(), None);
    assert_eq!(again.count_sessions().await.unwrap(), 1);
    assert_eq!(quarantined_files(dir).len(), 1);
}

#[tokio::test]
async fn garbage_file_is_moved_aside_and_a_fresh_database_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join(DB_FILE);
    let garbage = vec![0x42u8; 8192];
    std::fs::write(&db, &garbage).unwrap();
    // A stale WAL beside it must never be replayed into the fresh database.
    std::fs::write(tmp.path().join("history.db-wal"), vec![0x17u8; 4096]).unwrap();
    assert_quarantined_and_fresh(&db, &garbage).await;
}

#[tokio::test]
async fn database_failing_its_integrity_check_is_moved_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join(DB_FILE);
    let store = Store::open(&db, StoreOptions::default()).await.unwrap();
    for i in 0..300 {
        let id = format!("session-{i:04}-{}", "x".repeat(200));
        store
            .insert_session(&new(ServiceKind::Orbnet, &id, t(5, 0, 0)))
            .await
            .unwrap();
    }
    store.close().await;
    // Fold the WAL into the file (closing does it too, but not always before we read it).
    {
        let mut c = SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query("PRAGMA journal_mode=DELETE")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    assert!(!tmp.path().join("history.db-wal").exists(), "checkpointed");
    // Keep the header and schema page; scribble over the pages after it.
    let mut bytes = std::fs::read(&db).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    assert!(bytes.len() > 6 * page, "{} bytes", bytes.len());
    for b in &mut bytes[2 * page..5 * page] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    assert_quarantined_and_fresh(&db, &bytes).await;
}

#[tokio::test]
async fn open_while_another_process_holds_an_exclusive_lock_is_busy_not_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join(DB_FILE);
    let store = Store::open(&db, StoreOptions::default()).await.unwrap();
    store
        .insert_session(&new(ServiceKind::Orbnet, "kept", t(6, 0, 0)))
        .await
        .unwrap();
    store.close().await;
    // Another process in exclusive locking mode with a write transaction: nobody may read.
    let mut other = SqliteConnectOptions::new()
        .filename(&db)
        .pragma("locking_mode", "EXCLUSIVE")
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("INSERT INTO settings (key, value) VALUES ('lock', 'held')")
        .execute(&mut other)
        .await
        .unwrap();
    let started = Instant::now();
    let e = Store::open(
        &db,
        StoreOptions {
            busy_timeout: Duration::from_millis(300),
            max_connections: 2,
        },
    )
    .await
    .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(e, StoreError::Busy), "{e:?}");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert!(
        quarantined_files(tmp.path()).is_empty(),
        "a locked db is not damaged"
    );
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    let store = Store::open(&db, StoreOptions::default()).await.unwrap();
    assert_eq!(store.count_sessions().await.unwrap(), 1, "no row lost");
    assert_eq!(
        store.setting("lock").await.unwrap().as_deref(),
        Some("held")
    );
}

#[tokio::test]
async fn final_traffic_lands_on_a_closed_row_and_only_there() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), Duration::from_secs(5)).await;
    let a = store
        .insert_session(&new(ServiceKind::Tunnelbyte, "uuid-a", t(10, 0, 0)))
        .await
        .unwrap();
    let b = store
        .insert_session(&new(ServiceKind::Tunnelbyte, "uuid-b", t(10, 0, 0)))
        .await
        .unwrap();
    let mut close = SessionClose::new(t(10, 0, 1), EndReason::UserInitiated);
    close.bytes_in = Some(10);
    close.bytes_out = Some(20);
    assert!(store.close_session(a, &close).await.unwrap());
    // The tunnel went down after the close: its final counts still reach the row.
    store.set_traffic(a, 4096, 512).await.unwrap();
    let ra = store.session(a).await.unwrap().unwrap();
    assert_eq!((ra.bytes_in, ra.bytes_out), (4096, 512));
    assert_eq!(ra.state, SessionState::Ended);
    assert_eq!(ra.end_reason, Some(EndReason::UserInitiated));
    let rb = store.session(b).await.unwrap().unwrap();
    assert_eq!((rb.bytes_in, rb.bytes_out), (0, 0));
    assert!(matches!(
        store.set_traffic(999, 1, 1).await,
        Err(StoreError::NotFound(999))
    ));
}

#[tokio::test]
async fn spent_between_sums_one_service_in_the_window_open_rows_included() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), Duration::from_secs(5)).await;
    let mut rows = Vec::new();
    for (service, id, at, credits, cost) in [
        (ServiceKind::Orbnet, "a", t(9, 59, 59), 1.0, None),
        (ServiceKind::Orbnet, "b", t(10, 0, 0), 2.5, None),
        (ServiceKind::Orbnet, "c", t(11, 0, 0), 0.25, None),
        (ServiceKind::Tunnelbyte, "d", t(10, 30, 0), 0.0, Some(1234)),
        (ServiceKind::Orbnet, "e", t(12, 0, 0), 9.0, None),
    ] {
        let id = store.insert_session(&new(service, id, at)).await.unwrap();
        let mut u = UsageUpdate::at(at);
        u.credits_used = Some(credits).filter(|c| *c > 0.0);
        u.cost_millicents = cost;
        store.update_usage(id, &u).await.unwrap();
        rows.push(id);
    }
    // "b" is closed, "c" is left open (a crash): both count.
    let mut close = SessionClose::new(t(10, 10, 0), EndReason::CapReached);
    close.credits_used = Some(2.5);
    store.close_session(rows[1], &close).await.unwrap();
    let s = store
        .spent_between(ServiceKind::Orbnet, t(10, 0, 0), t(12, 0, 0))
        .await
        .unwrap();
    assert!((s.credits - 2.75).abs() < 1e-9, "{s:?}");
    assert_eq!(s.millicents, 0);
    let s = store
        .spent_between(ServiceKind::Tunnelbyte, t(10, 0, 0), t(12, 0, 0))
        .await
        .unwrap();
    assert_eq!(s.millicents, 1234);
    assert_eq!(
        store.session(rows[1]).await.unwrap().unwrap().end_reason,
        Some(EndReason::CapReached)
    );
}

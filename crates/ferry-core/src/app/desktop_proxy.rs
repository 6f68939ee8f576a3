//! "Send this desktop's apps through Ferry": while an app-mode session is connected, the GNOME
//! desktop proxy (`org.gnome.system.proxy`, read by GNOME apps, browsers and GLib/libproxy
//! clients) points at Ferry's local proxies; the previous values come back on disconnect. They
//! are journaled in the data dir first, so a crash is undone at the next start.
//!
//! Values are read and written with the `gsettings` tool (GVariant text), behind
//! [`ProxySettings`] so the logic is tested without a desktop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors of reading or writing the desktop proxy.
#[derive(Debug, thiserror::Error)]
pub enum DesktopProxyError {
    /// `gsettings` is missing or failed.
    #[error("gsettings {args}: {reason}")]
    Gsettings {
        /// The arguments.
        args: String,
        /// What went wrong.
        reason: String,
    },
    /// The journal could not be written or read.
    #[error("{path}: {reason}")]
    Journal {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The keys Ferry changes: `(schema, key)`.
pub const KEYS: &[(&str, &str)] = &[
    ("org.gnome.system.proxy", "mode"),
    ("org.gnome.system.proxy.socks", "host"),
    ("org.gnome.system.proxy.socks", "port"),
    ("org.gnome.system.proxy.http", "host"),
    ("org.gnome.system.proxy.http", "port"),
    ("org.gnome.system.proxy.https", "host"),
    ("org.gnome.system.proxy.https", "port"),
];

/// Where desktop proxy settings live.
pub trait ProxySettings: Send + Sync {
    /// A key's value in GVariant text (`'manual'`, `1080`).
    fn get(
        &self,
        schema: &str,
        key: &str,
    ) -> impl std::future::Future<Output = Result<String, DesktopProxyError>> + Send;
    /// Sets a key from GVariant text.
    fn set(
        &self,
        schema: &str,
        key: &str,
        value: &str,
    ) -> impl std::future::Future<Output = Result<(), DesktopProxyError>> + Send;
}

/// The real desktop: the `gsettings` command.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gsettings;

async fn gsettings(args: &[&str]) -> Result<String, DesktopProxyError> {
    let err = |reason: String| DesktopProxyError::Gsettings {
        args: args.join(" "),
        reason,
    };
    let out = tokio::process::Command::new("gsettings")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl ProxySettings for Gsettings {
    async fn get(&self, schema: &str, key: &str) -> Result<String, DesktopProxyError> {
        gsettings(&["get", schema, key]).await
    }

    async fn set(&self, schema: &str, key: &str, value: &str) -> Result<(), DesktopProxyError> {
        gsettings(&["set", schema, key, value]).await.map(|_| ())
    }
}

/// The journal of the values before Ferry changed them.
pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("desktop-proxy.json")
}

fn journal_err(path: &Path, e: impl std::fmt::Display) -> DesktopProxyError {
    DesktopProxyError::Journal {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// What the keys become for the proxies at `socks` and, when it runs, `http`.
pub fn wanted(
    socks: SocketAddr,
    http: Option<SocketAddr>,
) -> Vec<(&'static str, &'static str, String)> {
    let host = |a: SocketAddr| format!("'{}'", a.ip());
    let mut v = vec![
        ("org.gnome.system.proxy", "mode", "'manual'".to_string()),
        ("org.gnome.system.proxy.socks", "host", host(socks)),
        (
            "org.gnome.system.proxy.socks",
            "port",
            socks.port().to_string(),
        ),
    ];
    if let Some(h) = http {
        for schema in [
            "org.gnome.system.proxy.http",
            "org.gnome.system.proxy.https",
        ] {
            v.push((schema, "host", host(h)));
            v.push((schema, "port", h.port().to_string()));
        }
    }
    v
}

/// Points the desktop at Ferry's proxies, journaling the previous values first (a journal left
/// by an earlier run is kept: it holds the user's own values).
pub async fn apply<S: ProxySettings>(
    settings: &S,
    data_dir: &Path,
    socks: SocketAddr,
    http: Option<SocketAddr>,
) -> Result<(), DesktopProxyError> {
    let path = journal_path(data_dir);
    if !path.exists() {
        let mut before = BTreeMap::new();
        for (schema, key) in KEYS {
            before.insert(format!("{schema} {key}"), settings.get(schema, key).await?);
        }
        let text = serde_json::to_string_pretty(&before).map_err(|e| journal_err(&path, e))?;
        write_private(&path, &text)?;
    }
    for (schema, key, value) in wanted(socks, http) {
        settings.set(schema, key, &value).await?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), DesktopProxyError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| journal_err(&tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| journal_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| journal_err(path, e))
}

/// Puts the journaled values back and removes the journal; `false` when there was none.
pub async fn restore<S: ProxySettings>(
    settings: &S,
    data_dir: &Path,
) -> Result<bool, DesktopProxyError> {
    let path = journal_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(journal_err(&path, e)),
    };
    let before: BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| journal_err(&path, e))?;
    // Mode last: the desktop goes back to its own mode only once its values are back.
    let mut items: Vec<(&String, &String)> = before.iter().collect();
    items.sort_by_key(|(k, _)| k.ends_with(" mode"));
    for (k, v) in items {
        let Some((schema, key)) = k.split_once(' ') else {
            continue;
        };
        if KEYS.contains(&(schema, key)) {
            settings.set(schema, key, v).await?;
        }
    }
    std::fs::remove_file(&path).map_err(|e| journal_err(&path, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake(Mutex<BTreeMap<String, String>>);

    impl ProxySettings for Fake {
        async fn get(&self, schema: &str, key: &str) -> Result<String, DesktopProxyError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .get(&format!("{schema} {key}"))
                .cloned()
                .unwrap_or_else(|| "''".into()))
        }
        async fn set(&self, schema: &str, key: &str, value: &str) -> Result<(), DesktopProxyError> {
            self.0
                .lock()
                .unwrap()
                .insert(format!("{schema} {key}"), value.into());
            Ok(())
        }
    }

    #[tokio::test]
    async fn apply_then_restore_gives_the_users_values_back_even_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        fake.set("org.gnome.system.proxy", "mode", "'auto'")
            .await
            .unwrap();
        fake.set("org.gnome.system.proxy.http", "host", "'corp.proxy'")
            .await
            .unwrap();
        let socks: SocketAddr = "127.0.0.1:1080".parse().unwrap();
        let http: SocketAddr = "127.0.0.1:1081".parse().unwrap();
        apply(&fake, dir.path(), socks, Some(http)).await.unwrap();
        let get = |s: &'static str, k: &'static str| {
            let fake = &fake;
            async move { fake.get(s, k).await.unwrap() }
        };
        assert_eq!(get("org.gnome.system.proxy", "mode").await, "'manual'");
        assert_eq!(get("org.gnome.system.proxy.socks", "port").await, "1080");
        assert_eq!(get("org.gnome.system.proxy.https", "port").await, "1081");
        // A second apply (a reconnect, or a run after a crash) keeps the user's values.
        apply(&fake, dir.path(), socks, Some(http)).await.unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(journal_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        assert!(restore(&fake, dir.path()).await.unwrap());
        assert_eq!(get("org.gnome.system.proxy", "mode").await, "'auto'");
        assert_eq!(
            get("org.gnome.system.proxy.http", "host").await,
            "'corp.proxy'"
        );
        assert!(!journal_path(dir.path()).exists());
        assert!(
            !restore(&fake, dir.path()).await.unwrap(),
            "nothing left to restore"
        );
    }
}

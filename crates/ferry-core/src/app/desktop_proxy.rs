//! "Send this desktop's apps through Ferry": while an app-mode session is connected, the
//! desktop proxy points at Ferry's local proxies; the previous values come back on disconnect.
//! They are journaled in the data dir first, so a crash is undone at the next start.
//!
//! Two desktops ([`Desktop`]): GNOME's `org.gnome.system.proxy` (read by GNOME apps, browsers
//! and GLib/libproxy clients), written with the `gsettings` tool (GVariant text); and KDE's
//! `[Proxy Settings]` in `kioslaverc` (read by KDE apps and KIO), written with
//! `kwriteconfig6`/`kwriteconfig5`, after which KIO is told to reread it. Both sit behind
//! [`ProxySettings`], so the logic is tested without a desktop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors of reading or writing the desktop proxy.
#[derive(Debug, thiserror::Error)]
pub enum DesktopProxyError {
    /// `gsettings`, `kreadconfig` or `kwriteconfig` is missing or failed.
    #[error("{tool} {args}: {reason}")]
    Tool {
        /// The program.
        tool: &'static str,
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

/// A desktop whose proxy settings Ferry can point at itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desktop {
    /// GNOME (and desktops reading its settings): `org.gnome.system.proxy` through gsettings.
    Gnome,
    /// KDE Plasma: `kioslaverc`'s `[Proxy Settings]` through kwriteconfig.
    Kde,
}

/// KDE's group in `kioslaverc`.
pub const KDE_GROUP: &str = "Proxy Settings";

/// A KDE key that was not in the file (restored by deleting it).
pub const ABSENT: &str = "\u{1}ferry:absent";

/// The KDE keys Ferry changes: `(group, key)`.
pub const KDE_KEYS: &[(&str, &str)] = &[
    (KDE_GROUP, "ProxyType"),
    (KDE_GROUP, "socksProxy"),
    (KDE_GROUP, "httpProxy"),
    (KDE_GROUP, "httpsProxy"),
];

impl Desktop {
    /// The keys Ferry changes on this desktop: `(schema or group, key)`.
    pub fn keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Desktop::Gnome => KEYS,
            Desktop::Kde => KDE_KEYS,
        }
    }

    /// The journal of the values before Ferry changed them.
    pub fn journal_path(self, data_dir: &Path) -> PathBuf {
        match self {
            Desktop::Gnome => journal_path(data_dir),
            Desktop::Kde => data_dir.join("desktop-proxy-kde.json"),
        }
    }

    /// What the keys become for the proxies at `socks` and, when it runs, `http`.
    pub fn wanted(
        self,
        socks: SocketAddr,
        http: Option<SocketAddr>,
    ) -> Vec<(&'static str, &'static str, String)> {
        match self {
            Desktop::Gnome => wanted(socks, http),
            Desktop::Kde => {
                // kioslaverc spells a proxy as "scheme://host port".
                let url = |scheme: &str, a: SocketAddr| match a.ip() {
                    std::net::IpAddr::V6(ip) => format!("{scheme}://[{ip}] {}", a.port()),
                    std::net::IpAddr::V4(ip) => format!("{scheme}://{ip} {}", a.port()),
                };
                let mut v = vec![
                    (KDE_GROUP, "ProxyType", "1".to_string()),
                    (KDE_GROUP, "socksProxy", url("socks", socks)),
                ];
                if let Some(h) = http {
                    v.push((KDE_GROUP, "httpProxy", url("http", h)));
                    v.push((KDE_GROUP, "httpsProxy", url("http", h)));
                }
                v
            }
        }
    }

    /// True for the key that switches the proxy on: restored last.
    fn is_switch(key: &str) -> bool {
        key == "mode" || key == "ProxyType"
    }
}

/// The keys Ferry changes on GNOME: `(schema, key)`.
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
    run_tool("gsettings", args).await
}

async fn run_tool(tool: &'static str, args: &[&str]) -> Result<String, DesktopProxyError> {
    let err = |reason: String| DesktopProxyError::Tool {
        tool,
        args: args.join(" "),
        reason,
    };
    let out = tokio::process::Command::new(tool)
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

/// KDE's configuration: `kioslaverc` through `kreadconfig`/`kwriteconfig` (6, else 5).
#[derive(Debug, Clone, Copy)]
pub struct Kconfig {
    read: &'static str,
    write: &'static str,
}

impl Kconfig {
    /// The KDE tools on `PATH`, if any (none: not a KDE desktop, nothing to set).
    pub fn find() -> Option<Kconfig> {
        let on_path = |name: &str| {
            std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        };
        [
            ("kreadconfig6", "kwriteconfig6"),
            ("kreadconfig5", "kwriteconfig5"),
        ]
        .into_iter()
        .find(|(r, w)| on_path(r) && on_path(w))
        .map(|(read, write)| Kconfig { read, write })
    }
}

impl ProxySettings for Kconfig {
    async fn get(&self, group: &str, key: &str) -> Result<String, DesktopProxyError> {
        let args = [
            "--file",
            "kioslaverc",
            "--group",
            group,
            "--key",
            key,
            "--default",
            ABSENT,
        ];
        run_tool(self.read, &args).await
    }

    async fn set(&self, group: &str, key: &str, value: &str) -> Result<(), DesktopProxyError> {
        let base = ["--file", "kioslaverc", "--group", group, "--key", key];
        let mut args: Vec<&str> = base.to_vec();
        if value == ABSENT {
            args.push("--delete");
        } else {
            args.push(value);
        }
        run_tool(self.write, &args).await.map(|_| ())
    }
}

/// Tells KIO (KDE apps) to reread its proxy settings (best effort: the signal KDE's own
/// settings module sends).
pub async fn kde_reload() {
    let send = async {
        let conn = zbus::Connection::session().await.ok()?;
        conn.emit_signal(
            None::<&str>,
            "/KIO/Scheduler",
            "org.kde.KIO.Scheduler",
            "reparseSlaveConfiguration",
            &("",),
        )
        .await
        .ok()
    };
    if tokio::time::timeout(std::time::Duration::from_secs(2), send)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        tracing::debug!("KIO was not told to reread its proxy settings");
    }
}

/// The GNOME journal of the values before Ferry changed them.
pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("desktop-proxy.json")
}

fn journal_err(path: &Path, e: impl std::fmt::Display) -> DesktopProxyError {
    DesktopProxyError::Journal {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// What GNOME's keys become for the proxies at `socks` and, when it runs, `http`.
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

/// Points `desktop` at Ferry's proxies, journaling the previous values first (a journal left
/// by an earlier run is kept: it holds the user's own values).
pub async fn apply<S: ProxySettings>(
    desktop: Desktop,
    settings: &S,
    data_dir: &Path,
    socks: SocketAddr,
    http: Option<SocketAddr>,
) -> Result<(), DesktopProxyError> {
    let path = desktop.journal_path(data_dir);
    if !path.exists() {
        let mut before = BTreeMap::new();
        for (schema, key) in desktop.keys() {
            before.insert(format!("{schema} {key}"), settings.get(schema, key).await?);
        }
        let text = serde_json::to_string_pretty(&before).map_err(|e| journal_err(&path, e))?;
        write_private(&path, &text)?;
    }
    // The switch last: the desktop turns to the proxy once its addresses are in place.
    let mut wanted = desktop.wanted(socks, http);
    wanted.sort_by_key(|(_, key, _)| Desktop::is_switch(key));
    for (schema, key, value) in wanted {
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

/// Puts `desktop`'s journaled values back and removes the journal; `false` when there was none.
pub async fn restore<S: ProxySettings>(
    desktop: Desktop,
    settings: &S,
    data_dir: &Path,
) -> Result<bool, DesktopProxyError> {
    let path = desktop.journal_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(journal_err(&path, e)),
    };
    let before: BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| journal_err(&path, e))?;
    // Mode last: the desktop goes back to its own mode only once its values are back.
    let mut items: Vec<(&String, &String)> = before.iter().collect();
    let key_of = |k: &str| {
        k.rsplit_once(' ')
            .map(|(s, k)| (s.to_string(), k.to_string()))
    };
    items.sort_by_key(|(k, _)| key_of(k).is_some_and(|(_, key)| Desktop::is_switch(&key)));
    for (k, v) in items {
        let Some((schema, key)) = key_of(k) else {
            continue;
        };
        if desktop
            .keys()
            .iter()
            .any(|(s, kk)| *s == schema && *kk == key)
        {
            settings.set(&schema, &key, v).await?;
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
        apply(Desktop::Gnome, &fake, dir.path(), socks, Some(http))
            .await
            .unwrap();
        let get = |s: &'static str, k: &'static str| {
            let fake = &fake;
            async move { fake.get(s, k).await.unwrap() }
        };
        assert_eq!(get("org.gnome.system.proxy", "mode").await, "'manual'");
        assert_eq!(get("org.gnome.system.proxy.socks", "port").await, "1080");
        assert_eq!(get("org.gnome.system.proxy.https", "port").await, "1081");
        // A second apply (a reconnect, or a run after a crash) keeps the user's values.
        apply(Desktop::Gnome, &fake, dir.path(), socks, Some(http))
            .await
            .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(journal_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        assert!(restore(Desktop::Gnome, &fake, dir.path()).await.unwrap());
        assert_eq!(get("org.gnome.system.proxy", "mode").await, "'auto'");
        assert_eq!(
            get("org.gnome.system.proxy.http", "host").await,
            "'corp.proxy'"
        );
        assert!(!journal_path(dir.path()).exists());
        assert!(
            !restore(Desktop::Gnome, &fake, dir.path()).await.unwrap(),
            "nothing left to restore"
        );
    }

    #[test]
    fn kde_values_spell_proxies_as_kioslaverc_does() {
        let socks: SocketAddr = "127.0.0.1:1080".parse().unwrap();
        let http: SocketAddr = "[::1]:1081".parse().unwrap();
        let v = Desktop::Kde.wanted(socks, Some(http));
        let get = |k: &str| v.iter().find(|x| x.1 == k).map(|x| x.2.clone());
        assert_eq!(get("ProxyType").as_deref(), Some("1"));
        assert_eq!(get("socksProxy").as_deref(), Some("socks://127.0.0.1 1080"));
        assert_eq!(get("httpProxy").as_deref(), Some("http://[::1] 1081"));
        assert_eq!(get("httpsProxy").as_deref(), Some("http://[::1] 1081"));
        assert!(v.iter().all(|x| x.0 == KDE_GROUP));
        let without_http = Desktop::Kde.wanted(socks, None);
        assert!(without_http.iter().all(|x| x.1 != "httpProxy"));
    }

    #[tokio::test]
    async fn kde_keys_that_were_absent_are_deleted_again_and_the_switch_goes_last() {
        #[derive(Default)]
        struct Log(Mutex<Vec<(String, String)>>, Fake);
        impl ProxySettings for Log {
            async fn get(&self, s: &str, k: &str) -> Result<String, DesktopProxyError> {
                // Only ProxyType was in the user's file.
                Ok(if k == "ProxyType" {
                    self.1.get(s, k).await?
                } else {
                    ABSENT.into()
                })
            }
            async fn set(&self, s: &str, k: &str, v: &str) -> Result<(), DesktopProxyError> {
                self.0.lock().unwrap().push((k.into(), v.into()));
                self.1.set(s, k, v).await
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let log = Log::default();
        log.1.set(KDE_GROUP, "ProxyType", "0").await.unwrap();
        let socks: SocketAddr = "127.0.0.1:1080".parse().unwrap();
        apply(Desktop::Kde, &log, dir.path(), socks, None)
            .await
            .unwrap();
        assert!(Desktop::Kde.journal_path(dir.path()).exists());
        assert!(
            !journal_path(dir.path()).exists(),
            "GNOME's journal is apart"
        );
        log.0.lock().unwrap().clear();
        assert!(restore(Desktop::Kde, &log, dir.path()).await.unwrap());
        let sets = log.0.lock().unwrap().clone();
        assert_eq!(
            sets.last(),
            Some(&("ProxyType".to_string(), "0".to_string())),
            "{sets:?}"
        );
        assert!(sets.contains(&("socksProxy".to_string(), ABSENT.to_string())));
    }
}

//! "Open a browser through Ferry": starts a browser in its own profile (under the data dir, so
//! the user's everyday profile is untouched) with every request, DNS included, going through
//! the app-mode SOCKS5 proxy. Chromium-family browsers get command-line flags; Firefox gets a
//! `user.js` in its profile. `$FERRY_BROWSER` names the program to use instead of the first one
//! found on `PATH`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors of starting the browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// No supported browser is installed.
    #[error("no supported browser found (looked for {0}); set FERRY_BROWSER to one")]
    NotFound(String),
    /// Preparing its profile or starting it failed.
    #[error("could not start {program}: {reason}")]
    Start {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
}

/// Browsers looked for, in order.
pub const CANDIDATES: &[&str] = &[
    "firefox",
    "firefox-esr",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "brave-browser",
];

/// How a browser is told about the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A profile directory with a `user.js`.
    Firefox,
    /// Command-line flags.
    Chromium,
}

/// The family of a program by its name.
pub fn family(program: &Path) -> Family {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.contains("firefox") || name.contains("librewolf") {
        Family::Firefox
    } else {
        Family::Chromium
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The browser to start: `$FERRY_BROWSER`, else the first candidate on `PATH`.
pub fn find() -> Result<PathBuf, BrowserError> {
    if let Some(p) = std::env::var_os("FERRY_BROWSER").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return Ok(if p.components().count() == 1 {
            on_path(&p.to_string_lossy()).unwrap_or(p)
        } else {
            p
        });
    }
    CANDIDATES
        .iter()
        .find_map(|c| on_path(c))
        .ok_or_else(|| BrowserError::NotFound(CANDIDATES.join(", ")))
}

/// Firefox preferences sending everything, DNS included, through `socks`.
pub fn firefox_prefs(socks: SocketAddr) -> String {
    format!(
        "// Written by Ferry: this profile browses through Ferry's tunnel.\n\
         user_pref(\"network.proxy.type\", 1);\n\
         user_pref(\"network.proxy.socks\", \"{ip}\");\n\
         user_pref(\"network.proxy.socks_port\", {port});\n\
         user_pref(\"network.proxy.socks_version\", 5);\n\
         user_pref(\"network.proxy.socks_remote_dns\", true);\n\
         user_pref(\"network.proxy.no_proxies_on\", \"\");\n\
         user_pref(\"network.trr.mode\", 5);\n\
         user_pref(\"media.peerconnection.enabled\", false);\n\
         user_pref(\"browser.shell.checkDefaultBrowser\", false);\n",
        ip = socks.ip(),
        port = socks.port()
    )
}

/// The arguments for `program` with its profile in `profile`.
pub fn args(family: Family, profile: &Path, socks: SocketAddr) -> Vec<String> {
    match family {
        Family::Firefox => vec![
            "--no-remote".into(),
            "--profile".into(),
            profile.display().to_string(),
        ],
        Family::Chromium => vec![
            format!("--user-data-dir={}", profile.display()),
            format!("--proxy-server=socks5://{socks}"),
            // Names resolve at the proxy's end, never locally.
            format!(
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {}",
                socks.ip()
            ),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
        ],
    }
}

/// Starts the browser for the proxy at `socks` with its profile under `data_dir`; returns the
/// program started.
pub fn launch(data_dir: &Path, socks: SocketAddr) -> Result<PathBuf, BrowserError> {
    let program = find()?;
    let fam = family(&program);
    let profile = data_dir.join(match fam {
        Family::Firefox => "browser-firefox",
        Family::Chromium => "browser-chromium",
    });
    let start_err = |reason: String| BrowserError::Start {
        program: program.display().to_string(),
        reason,
    };
    crate::paths::ensure_private_dir(&profile).map_err(|e| start_err(e.to_string()))?;
    if fam == Family::Firefox {
        std::fs::write(profile.join("user.js"), firefox_prefs(socks))
            .map_err(|e| start_err(e.to_string()))?;
    }
    let mut cmd = std::process::Command::new(&program);
    cmd.args(args(fam, &profile, socks))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // No service token is ever in Ferry's environment for a child to inherit.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FERRY_") && k.to_string_lossy().ends_with("_TOKEN") {
            cmd.env_remove(k);
        }
    }
    cmd.spawn().map_err(|e| start_err(e.to_string()))?;
    Ok(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_sends_everything_and_dns_through_the_proxy_in_its_own_profile() {
        let socks: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        let p = Path::new("/data/browser");
        assert_eq!(family(Path::new("/usr/bin/firefox-esr")), Family::Firefox);
        assert_eq!(family(Path::new("/usr/bin/chromium")), Family::Chromium);
        let c = args(Family::Chromium, p, socks);
        assert!(c.contains(&"--proxy-server=socks5://127.0.0.1:40123".to_string()));
        assert!(c.contains(&"--user-data-dir=/data/browser".to_string()));
        assert!(c
            .iter()
            .any(|a| a.starts_with("--host-resolver-rules=MAP * ~NOTFOUND")));
        assert_eq!(
            args(Family::Firefox, p, socks),
            ["--no-remote", "--profile", "/data/browser"]
        );
        let prefs = firefox_prefs(socks);
        for want in [
            "\"network.proxy.type\", 1",
            "\"network.proxy.socks_port\", 40123",
            "\"network.proxy.socks_remote_dns\", true",
        ] {
            assert!(prefs.contains(want), "{want} in {prefs}");
        }
    }
}

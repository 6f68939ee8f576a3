//! Launch at login on Linux desktops: an XDG autostart entry
//! (`$XDG_CONFIG_HOME/autostart/ferry.desktop`, else `~/.config/autostart`) that starts Ferry
//! minimized to the tray. Written when the setting is turned on, removed when it is turned off.

use std::path::{Path, PathBuf};

/// The entry's file name.
pub const FILE_NAME: &str = "ferry.desktop";

/// The autostart directory from the environment, if a home is known.
pub fn dir_from(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    match env("XDG_CONFIG_HOME").filter(|v| v.starts_with('/')) {
        Some(d) => Some(PathBuf::from(d).join("autostart")),
        None => env("HOME")
            .filter(|h| h.starts_with('/'))
            .map(|h| PathBuf::from(h).join(".config/autostart")),
    }
}

/// Quotes one argument for a desktop entry's `Exec` key (Desktop Entry spec, "Exec key").
fn quote(arg: &str) -> String {
    let plain = arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.=:+,".contains(c));
    if plain && !arg.is_empty() {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The entry's text for `exe` started with `args`.
pub fn entry(exe: &Path, args: &[&str]) -> String {
    let mut exec = quote(&exe.to_string_lossy());
    for a in args {
        exec.push(' ');
        exec.push_str(&quote(a));
    }
    format!(
        "[Desktop Entry]\nType=Application\nName=Ferry\nComment=VPN client: connect and see what \
         the session costs\nExec={exec}\nIcon=ferry\nTerminal=false\nX-GNOME-Autostart-enabled=true\n"
    )
}

/// Writes (enabled) or removes (disabled) the entry in `dir`.
pub fn apply(dir: &Path, enabled: bool, exe: &Path, args: &[&str]) -> std::io::Result<()> {
    let path = dir.join(FILE_NAME);
    if enabled {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        std::fs::write(&tmp, entry(exe, args))?;
        std::fs::rename(&tmp, &path)
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_quotes_paths_and_escapes_field_codes() {
        let e = entry(Path::new("/opt/my apps/ferry"), &["--minimized", "50%"]);
        assert!(
            e.contains("Exec=\"/opt/my apps/ferry\" --minimized \"50%%\"\n"),
            "{e}"
        );
        assert!(entry(Path::new("/usr/bin/ferry-desktop"), &["--minimized"])
            .contains("Exec=/usr/bin/ferry-desktop --minimized\n"));
    }

    #[test]
    fn apply_writes_then_removes_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("autostart");
        let exe = Path::new("/usr/bin/ferry-desktop");
        apply(&dir, true, exe, &["--minimized"]).unwrap();
        let text = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert!(text.starts_with("[Desktop Entry]\n"));
        apply(&dir, true, exe, &["--minimized"]).unwrap();
        apply(&dir, false, exe, &[]).unwrap();
        assert!(!dir.join(FILE_NAME).exists());
        apply(&dir, false, exe, &[]).unwrap();
    }

    #[test]
    fn dir_prefers_xdg_config_home_and_ignores_relative_values() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            dir_from(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/autostart"))
        );
        assert_eq!(
            dir_from(env(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/autostart"))
        );
        assert_eq!(dir_from(env(&[])), None);
    }
}

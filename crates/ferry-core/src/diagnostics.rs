//! Diagnostics a user can hand to support: a log file kept in the data dir (the front ends write
//! their `tracing` output to it, 0600, rotated at 1 MiB) and a redacted report (versions, state,
//! settings, which services are signed in, the last 200 log lines). Nothing that identifies the
//! account or opens it — tokens, keys, emails, ids — survives [`scrub`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The log file's name in the data dir.
pub const LOG_FILE: &str = "ferry.log";
/// The log is rotated (to `ferry.log.1`) past this size.
pub const LOG_MAX_BYTES: u64 = 1 << 20;
/// Log lines a report carries.
pub const REPORT_LOG_LINES: usize = 200;

/// The log file of a data dir.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOG_FILE)
}

/// A `tracing_subscriber` writer appending to the data dir's log file (created 0600, rotated
/// at [`LOG_MAX_BYTES`]). Write errors are swallowed: logging never fails the app.
#[derive(Debug, Clone)]
pub struct LogFile {
    inner: Arc<Mutex<LogState>>,
}

#[derive(Debug)]
struct LogState {
    path: PathBuf,
    file: Option<File>,
    written: u64,
}

impl LogFile {
    /// A writer for `data_dir/ferry.log` (the directory must exist).
    pub fn new(data_dir: &Path) -> Self {
        let path = log_path(data_dir);
        let written = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        LogFile {
            inner: Arc::new(Mutex::new(LogState {
                path,
                file: None,
                written,
            })),
        }
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Ok(mut st) = self.inner.lock() else {
            return Ok(buf.len());
        };
        if st.written + buf.len() as u64 > LOG_MAX_BYTES {
            st.file = None;
            let _ = std::fs::rename(&st.path, st.path.with_extension("log.1"));
            st.written = 0;
        }
        if st.file.is_none() {
            st.file = open_log(&st.path).ok();
        }
        if let Some(f) = st.file.as_mut() {
            if f.write_all(buf).is_ok() {
                st.written += buf.len() as u64;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Ok(mut st) = self.inner.lock() {
            if let Some(f) = st.file.as_mut() {
                let _ = f.flush();
            }
        }
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogFile;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The last `n` lines of the data dir's log (the rotated file first when the current one is
/// short), oldest first.
pub fn last_log_lines(data_dir: &Path, n: usize) -> Vec<String> {
    let mut lines: VecDeque<String> = VecDeque::with_capacity(n + 1);
    let current = log_path(data_dir);
    for path in [current.with_extension("log.1"), current] {
        let Ok(f) = File::open(&path) else { continue };
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            lines.push_back(line);
            if lines.len() > n {
                lines.pop_front();
            }
        }
    }
    lines.into()
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '=')
}

/// Redacts what could identify or open the account from one line: emails, bearer tokens,
/// JWTs, WireGuard keys and other long opaque strings (tokens, ids, UUIDs), and known secrets
/// given in `known` (the tokens in the keyring, for example).
pub fn scrub(line: &str, known: &[&str]) -> String {
    let mut s = line.to_string();
    for k in known.iter().filter(|k| k.len() >= 6) {
        s = s.replace(k, "<secret>");
    }
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if !word.is_empty() {
            out.push_str(&redact_word(word));
            word.clear();
        }
    };
    for c in s.chars() {
        if is_token_char(c) || c == '@' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn redact_word(word: &str) -> String {
    if let Some((user, host)) = word.split_once('@') {
        if !user.is_empty() && host.contains('.') {
            return "<email>".into();
        }
    }
    let core = word.trim_end_matches('.');
    let opaque = core.len() >= 20
        && !core.contains("://")
        && core.chars().any(|c| c.is_ascii_digit())
        && core.chars().any(|c| c.is_ascii_alphabetic())
        && !core.contains('/');
    let uuid = core.len() == 36 && core.matches('-').count() == 4;
    if opaque || uuid || (core.len() == 44 && core.ends_with('=')) {
        format!("<redacted>{}", &word[core.len()..])
    } else {
        word.to_string()
    }
}

/// What a front end knows for a report.
#[derive(Debug, Clone, Default)]
pub struct ReportInputs {
    /// Which front end builds it (`desktop`, `cli`).
    pub front_end: String,
    /// Ferry's version.
    pub version: String,
    /// Connection state in words (`disconnected`, `connected to tunnelbyte fsn (app mode)`).
    pub state: String,
    /// Signed in per service (`orbnet: yes`).
    pub accounts: Vec<(String, bool)>,
    /// The settings as JSON (no secrets in them).
    pub settings: String,
    /// The spend caps as JSON.
    pub budget: String,
    /// The data dir (for the log).
    pub data_dir: PathBuf,
    /// Strings to redact wherever they appear (the tokens in the keyring).
    pub secrets: Vec<String>,
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The redacted report, as plain text.
pub fn report(i: &ReportInputs) -> String {
    let known: Vec<&str> = i.secrets.iter().map(String::as_str).collect();
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(&scrub(s, &known));
        out.push('\n');
    };
    line("# Ferry diagnostics (redacted: no tokens, keys, emails or ids)");
    line(&format!("ferry {} ({})", i.version, i.front_end));
    line(&format!("os: {} · kernel {}", os_release(), kernel()));
    line(&format!(
        "desktop: {} · session {}",
        std::env::var("XDG_CURRENT_DESKTOP").unwrap_or_else(|_| "none".into()),
        std::env::var("XDG_SESSION_TYPE").unwrap_or_else(|_| "unknown".into())
    ));
    line(&format!("state: {}", i.state));
    for (service, signed_in) in &i.accounts {
        line(&format!(
            "account {service}: {}",
            if *signed_in {
                "signed in"
            } else {
                "signed out"
            }
        ));
    }
    line("");
    line("## settings");
    for l in i.settings.lines() {
        line(l);
    }
    line("## spend caps");
    for l in i.budget.lines() {
        line(l);
    }
    let logs = last_log_lines(&i.data_dir, REPORT_LOG_LINES);
    line(&format!("## last {} log lines", logs.len()));
    for l in &logs {
        line(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_what_identifies_or_opens_the_account() {
        let key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlMTIz";
        let line = format!(
            "login ok for ana@example.org token tb_live_0123456789abcdefghij key {key} jwt {jwt} \
             session 5f0c3b8e-2d4a-4c1e-9a7b-1234567890ab at https://api.tunnelbyte.dev/v1 in 12 ms"
        );
        let s = scrub(&line, &["hunter2-secret"]);
        for leak in [
            "ana@example.org",
            "tb_live_0123456789abcdefghij",
            key,
            jwt,
            "5f0c3b8e-2d4a",
        ] {
            assert!(!s.contains(leak), "{leak} in {s}");
        }
        assert!(s.contains("<email>") && s.contains("<redacted>"), "{s}");
        assert!(
            s.contains("https://api.tunnelbyte.dev/v1"),
            "URLs stay: {s}"
        );
        assert!(s.contains("in 12 ms"), "{s}");
        assert_eq!(
            scrub("pass hunter2-secret!", &["hunter2-secret"]),
            "pass <secret>!"
        );
    }

    #[test]
    fn the_log_file_is_private_rotates_and_the_report_carries_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::new(dir.path());
        for i in 0..300 {
            writeln!(log, "line {i} for bob@example.com").unwrap();
        }
        log.flush().unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(log_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner reads the log");
        let tail = last_log_lines(dir.path(), REPORT_LOG_LINES);
        assert_eq!(tail.len(), 200);
        assert!(tail[199].starts_with("line 299"), "{:?}", tail.last());
        let r = report(&ReportInputs {
            front_end: "cli".into(),
            version: "0.1.0".into(),
            state: "disconnected".into(),
            accounts: vec![("orbnet".into(), true)],
            settings: "{\"neosc\": \"https://neo.example\"}".into(),
            budget: "{}".into(),
            data_dir: dir.path().into(),
            secrets: vec![],
        });
        assert!(r.contains("account orbnet: signed in"), "{r}");
        assert!(r.contains("## last 200 log lines"), "{r}");
        assert!(
            r.contains("line 299") && !r.contains("bob@example.com"),
            "{r}"
        );
        // Past 1 MiB the file rotates and the tail spans both files.
        let big = "x".repeat(1000);
        for _ in 0..1100 {
            writeln!(log, "{big}").unwrap();
        }
        assert!(log_path(dir.path()).with_extension("log.1").exists());
        assert!(std::fs::metadata(log_path(dir.path())).unwrap().len() <= LOG_MAX_BYTES);
    }
}

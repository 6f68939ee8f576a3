//! Credentials for proxies that other machines can reach (`--proxy-auth FILE`): one
//! `user:password` line in a file that only its owner may read. Clients authenticate with
//! RFC 1929 username/password (SOCKS5) or `Proxy-Authorization: Basic` (HTTP); both are
//! compared in constant time (SHA-256 digests of what was given and what is expected, compared
//! with `subtle`, so neither the contents nor the lengths show in the timing).

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Why credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error(
        "{} is readable by group or others (mode {mode:03o}); it holds the proxy's password: chmod 600 it",
        path.display()
    )]
    Readable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The text is not `user:password` with both parts 1 to 255 bytes long.
    #[error("proxy credentials must be one line `user:password` (each 1 to 255 bytes): {0}")]
    Format(&'static str),
}

/// A user name and password every client of the proxies must present.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The longest user name or password RFC 1929 can carry.
const MAX_LEN: usize = 255;

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Credentials {
    /// Credentials from a user name (no `:`) and a password, each 1 to 255 bytes.
    pub fn new(user: &str, password: &str) -> Result<Self, CredentialsError> {
        if user.is_empty() || password.is_empty() {
            return Err(CredentialsError::Format("empty user or password"));
        }
        if user.len() > MAX_LEN || password.len() > MAX_LEN {
            return Err(CredentialsError::Format("longer than 255 bytes"));
        }
        if user.contains(':') {
            return Err(CredentialsError::Format("the user name holds a `:`"));
        }
        if user.contains(['\r', '\n']) || password.contains(['\r', '\n']) {
            return Err(CredentialsError::Format("more than one line"));
        }
        Ok(Self {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// Parses `user:password` (one final newline is allowed; the password may hold `:`).
    pub fn parse(text: &str) -> Result<Self, CredentialsError> {
        let line = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        let (user, password) = line
            .split_once(':')
            .ok_or(CredentialsError::Format("no `:`"))?;
        Self::new(user, password)
    }

    /// Reads `user:password` from `path`, which group and others must not be able to read.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let read_error = |source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        // The mode of the file opened, not of whatever the path names a moment later.
        let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            return Err(CredentialsError::Readable {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = String::new();
        file.take(4096)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        Self::parse(&text)
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password (for a client of the proxy this process starts, e.g. `ferry connect -- CMD`).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether `user` and `password` are these credentials, in constant time.
    pub(crate) fn verify(&self, user: &[u8], password: &[u8]) -> bool {
        let user_ok = digest(user).ct_eq(&digest(self.user.as_bytes()));
        let password_ok = digest(password).ct_eq(&digest(self.password.as_bytes()));
        (user_ok & password_ok).into()
    }

    /// Whether a `Proxy-Authorization` value (`Basic base64(user:password)`) carries these
    /// credentials.
    pub(crate) fn verify_basic(&self, value: &[u8]) -> bool {
        let Ok(value) = std::str::from_utf8(value) else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return false;
        };
        self.verify(&decoded[..colon], &decoded[colon + 1..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn lines_parse() {
        let c = Credentials::parse("alice:s3cret:with:colons\n").unwrap();
        assert_eq!((c.user(), c.password()), ("alice", "s3cret:with:colons"));
        let c = Credentials::parse("bob:pw\r\n").unwrap();
        assert_eq!(c.password(), "pw");
        for bad in [
            "",
            "alice",
            ":pw",
            "alice:",
            "alice:pw\nmore\n",
            &format!("{}:pw", "u".repeat(256)),
            &format!("u:{}", "p".repeat(256)),
        ] {
            assert!(
                matches!(Credentials::parse(bad), Err(CredentialsError::Format(_))),
                "{bad:?}"
            );
        }
        assert!(Credentials::parse(&format!("u:{}", "p".repeat(255))).is_ok());
    }

    #[test]
    fn only_the_right_pair_verifies() {
        let c = Credentials::new("alice", "pw").unwrap();
        assert!(c.verify(b"alice", b"pw"));
        assert!(!c.verify(b"alice", b"pW"));
        assert!(!c.verify(b"alice", b"pw "));
        assert!(!c.verify(b"Alice", b"pw"));
        assert!(!c.verify(b"", b""));
        assert!(!c.verify(b"alicepw", b""));
        assert!(c.verify_basic(basic("alice:pw").as_bytes()));
        let lower = basic("alice:pw").replacen("Basic", "basic", 1);
        assert!(c.verify_basic(lower.as_bytes()));
        assert!(!c.verify_basic(basic("alice:px").as_bytes()));
        assert!(!c.verify_basic(basic("alicepw").as_bytes()));
        assert!(!c.verify_basic(b"Bearer abc"));
        assert!(!c.verify_basic(b"Basic !!!"));
        assert!(!c.verify_basic(b"Basic"));
        assert!(!c.verify_basic(&[0xff, 0xfe]));
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        let c = Credentials::new("alice", "hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("ferry-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("auth");
        std::fs::write(&path, "alice:pw\n").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o640, false), (0o604, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            match Credentials::load(&path) {
                Ok(c) => {
                    assert!(ok, "{mode:o} accepted");
                    assert!(c.verify(b"alice", b"pw"));
                }
                Err(CredentialsError::Readable { mode: m, .. }) => {
                    assert!(!ok, "{mode:o} refused");
                    assert_eq!(m, mode);
                }
                Err(e) => panic!("{mode:o}: {e}"),
            }
        }
        let missing = Credentials::load(&dir.join("missing"));
        assert!(matches!(missing, Err(CredentialsError::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

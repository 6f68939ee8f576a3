//! Runs the real `ferry` binary against a lab process with a private data dir and in-memory
//! secrets (shared by the CLI end-to-end tests). Test support: failures panic with context.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::lab::{ferry_bin, LabProcess};
use serde_json::Value;

/// A `ferry` invocation context: the lab's URLs, a temp data dir, extra env vars.
pub struct Cli<'a> {
    /// The lab the CLI talks to.
    pub lab: &'a LabProcess,
    /// The temp dir holding the data dir (`ferry/`) and HOME.
    pub data: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl<'a> Cli<'a> {
    /// A context with a fresh temp data dir.
    pub fn new(lab: &'a LabProcess) -> Self {
        Self {
            lab,
            data: tempfile::tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    /// Adds an environment variable to every run.
    pub fn with(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Runs `ferry ARGS` with `stdin`, asserting it did not panic.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(ferry_bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.data.path())
            .env("FERRY_DATA_DIR", self.data.path().join("ferry"))
            .env("FERRY_SECRETS", "memory")
            .env("FERRY_ORBNET_URL", &self.lab.urls.orbnet)
            .env("FERRY_TUNNELBYTE_URL", &self.lab.urls.tunnelbyte)
            .env("FERRY_NEOSC_URL", &self.lab.urls.neosc)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        {
            let mut si = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                si.write_all(s.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "ferry {args:?} panicked: {err}");
        out
    }

    /// Runs `ferry ARGS`, asserting success, and parses its stdout as JSON.
    pub fn ok_json(&self, args: &[&str]) -> Value {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "ferry {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("ferry {args:?} printed no JSON ({e}): {:?}", out.stdout))
    }
}

/// Bytes as lossy UTF-8 text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

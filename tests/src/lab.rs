//! Runs the lab as a separate `ferry lab` process and talks to its control API.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `ferry` binary built by this workspace: `$FERRY_BIN`, or `target/<profile>/ferry` next to
/// the running test executable.
pub fn ferry_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/test-xxxx -> target/debug/ferry
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    dir.join("ferry")
}

/// Base URLs printed by `ferry lab`.
#[derive(Debug, Clone)]
pub struct LabUrls {
    /// OrbNET base URL.
    pub orbnet: String,
    /// tunnelbyte base URL.
    pub tunnelbyte: String,
    /// NeoSC base URL.
    pub neosc: String,
    /// Control API base URL.
    pub control: String,
}

/// A `ferry lab` child process, killed on drop.
#[derive(Debug)]
pub struct LabProcess {
    child: Child,
    /// Its base URLs.
    pub urls: LabUrls,
    /// The raw JSON line it printed.
    pub line: String,
    http: reqwest::Client,
}

impl LabProcess {
    /// Starts `ferry lab --listen 127.0.0.1:0 --egress loopback` plus `extra` args and waits
    /// (up to 20 s) for its JSON line.
    pub fn start_with(extra: &[&str]) -> Result<Self, String> {
        let mut cmd = Command::new(ferry_bin());
        cmd.args(["lab", "--listen", "127.0.0.1:0", "--egress", "loopback"])
            .args(extra);
        Self::start_command(cmd)
    }

    /// Starts a lab from a prepared command (e.g. `ip netns exec NS ferry lab --listen ...`)
    /// and waits (up to 20 s) for its JSON line.
    pub fn start_command(mut cmd: Command) -> Result<Self, String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let r = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(l)) if !l.trim().is_empty() => l.trim().to_owned(),
            other => {
                let _ = child.kill();
                return Err(format!("lab did not print its URLs: {other:?}"));
            }
        };
        let v: Value =
            serde_json::from_str(&line).map_err(|e| format!("bad lab line {line}: {e}"))?;
        let get = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .ok_or(format!("no {k} in {line}"))
        };
        let urls = LabUrls {
            orbnet: get("orbnet")?,
            tunnelbyte: get("tunnelbyte")?,
            neosc: get("neosc")?,
            control: get("control")?,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            child,
            urls,
            line,
            http,
        })
    }

    /// Starts a lab with default arguments.
    pub fn start() -> Result<Self, String> {
        Self::start_with(&[])
    }

    /// The process id of the lab.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A reqwest client for talking to the lab.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET {control}{path}` → JSON.
    pub async fn control_get(&self, path: &str) -> Result<Value, String> {
        let r = self
            .http
            .get(format!("{}{path}", self.urls.control))
            .send()
            .await;
        let r = r.map_err(|e| e.to_string())?;
        r.json().await.map_err(|e| e.to_string())
    }

    /// `POST {control}{path}` with a JSON body → JSON (errors on a non-2xx status).
    pub async fn control_post(&self, path: &str, body: Value) -> Result<Value, String> {
        let r = self
            .http
            .post(format!("{}{path}", self.urls.control))
            .json(&body)
            .send()
            .await;
        let r = r.map_err(|e| e.to_string())?;
        let status = r.status();
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(v)
        } else {
            Err(format!("{path}: {status} {v}"))
        }
    }

    /// `DELETE {control}{path}`.
    pub async fn control_delete(&self, path: &str) -> Result<(), String> {
        let r = self
            .http
            .delete(format!("{}{path}", self.urls.control))
            .send()
            .await;
        r.map_err(|e| e.to_string())?
            .error_for_status()
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The seeded accounts (`GET /accounts`).
    pub async fn accounts(&self) -> Value {
        self.control_get("/accounts").await.unwrap_or(Value::Null)
    }

    /// Moves the lab's clock forward.
    pub async fn advance(&self, seconds: f64) -> Result<Value, String> {
        self.control_post("/clock/advance", serde_json::json!({ "seconds": seconds }))
            .await
    }

    /// Arms a fault rule (see the lab's `POST /faults`).
    pub async fn fault(&self, rule: Value) -> Result<Value, String> {
        self.control_post("/faults", rule).await
    }

    /// Every request the lab recorded, oldest first.
    pub async fn requests(&self) -> Vec<Value> {
        let v = self.control_get("/requests").await.unwrap_or(Value::Null);
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// Sends SIGKILL to the lab.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

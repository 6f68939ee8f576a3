//! Network namespaces for tests: unique names, veth pairs, wireguard-go peers, running code or
//! commands inside a namespace, snapshots of its network state. Everything is removed on drop.
//!
//! Tests using this need root; call [`skip_unless_root`] first.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::io::{BufRead as _, BufReader};
use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Returns a reason to skip when the test cannot create namespaces (not root, tools missing).
pub fn skip_reason(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces)".into());
    }
    for t in tools.iter().chain(["ip"].iter()) {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{t} is not installed (scripts/deps.sh installs it)"
            ));
        }
    }
    None
}

/// Prints why and returns true when the test should be skipped.
pub fn skip_unless_root(test: &str, tools: &[&str]) -> bool {
    match skip_reason(tools) {
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            true
        }
        None => false,
    }
}

/// Runs a command, returning stdout; errors carry stderr.
pub fn sh(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace with a private resolv.conf, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// The namespace name (`ip netns` name).
    pub name: String,
}

impl Netns {
    /// Creates `ferry-<tag>-<pid>-<n>` with loopback up and its own /etc/netns resolv.conf
    /// (so nothing run with [`Netns::cmd`] can touch the host's).
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ferry-{tag}-{}-{n}", std::process::id());
        sh("ip", &["netns", "add", &name]).unwrap_or_else(|e| panic!("{e}"));
        let ns = Self { name };
        std::fs::create_dir_all(ns.etc()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(ns.etc().join("resolv.conf"), "nameserver 192.0.2.53\n")
            .unwrap_or_else(|e| panic!("{e}"));
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// `ip -n <ns> ARGS`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        sh("ip", &a).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Loads an nftables script inside the namespace (`nft -f -`), panicking on failure.
    pub fn nft(&self, script: &str) {
        use std::io::Write as _;
        let mut c = self.cmd("nft");
        c.args(["-f", "-"]).stdin(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("nft: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .unwrap_or_else(|e| panic!("nft: {e}"));
        }
        let ok = child.wait().is_ok_and(|s| s.success());
        assert!(ok, "nft refused:\n{script}");
    }

    /// A command run inside the namespace (`ip netns exec`).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that has entered this namespace (sockets it opens live there).
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on this thread only, with a valid namespace descriptor.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// A TCP forwarder on this namespace's loopback to `to` (reached from this namespace):
    /// services on another namespace's address look local to a client here, as Ferry only
    /// speaks plain http to loopback. Runs until the process ends; returns its address.
    pub fn forward_tcp(&self, to: std::net::SocketAddr) -> std::net::SocketAddr {
        let (tx, rx) = std::sync::mpsc::channel();
        self.run(move || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("forwarder bind: {e}"));
            let _ = tx.send(listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
            for client in listener.incoming().flatten() {
                // Threads spawned here stay in this namespace (it is per thread, inherited).
                std::thread::spawn(move || {
                    let Ok(server) = std::net::TcpStream::connect(to) else {
                        return;
                    };
                    let (mut c2, mut s2) = match (client.try_clone(), server.try_clone()) {
                        (Ok(c), Ok(s)) => (c, s),
                        _ => return,
                    };
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut s2);
                        let _ = s2.shutdown(std::net::Shutdown::Write);
                    });
                    let (mut c, mut s) = (client, server);
                    let _ = std::io::copy(&mut s, &mut c);
                    let _ = c.shutdown(std::net::Shutdown::Write);
                    let _ = up.join();
                });
            }
        });
        rx.recv().unwrap_or_else(|e| panic!("forwarder: {e}"))
    }

    /// The namespace's links, addresses, routes (all tables), rules and resolv.conf, for
    /// before/after comparisons. IPv6 link-local entries (DAD churn) are left out.
    pub fn snapshot(&self) -> String {
        let mut s = String::new();
        for args in [
            &["-o", "link", "show"][..],
            &["-o", "address", "show"],
            &["-4", "route", "show", "table", "all"],
            &["-6", "route", "show", "table", "all"],
            &["-4", "rule", "show"],
            &["-6", "rule", "show"],
        ] {
            // IPv6 link-local addresses and routes come and go with DAD on their own: leave them out.
            let out: String = self
                .ip(args)
                .lines()
                .filter(|l| !l.contains("fe80:"))
                .map(|l| format!("{l}\n"))
                .collect();
            s.push_str(&format!("## ip {}\n{out}", args.join(" ")));
        }
        let resolv = std::fs::read_to_string(self.etc().join("resolv.conf")).unwrap_or_default();
        s.push_str(&format!("## resolv.conf\n{resolv}"));
        let mark = self
            .cmd("cat")
            .arg("/proc/sys/net/ipv4/conf/all/src_valid_mark")
            .output();
        if let Ok(o) = mark {
            s.push_str(&format!(
                "## src_valid_mark {}",
                String::from_utf8_lossy(&o.stdout)
            ));
        }
        s
    }

    /// This namespace's resolv.conf as seen by processes run inside it.
    pub fn resolv_conf(&self) -> String {
        std::fs::read_to_string(self.etc().join("resolv.conf")).unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(self.etc());
    }
}

/// Joins `a` and `b` with a veth pair; addresses are `a_addr`/`b_addr` with prefix.
pub fn veth(a: &Netns, b: &Netns, a_addr: &str, b_addr: &str) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let (va, vb) = (
        format!("fva{}x{n}", std::process::id() % 100_000),
        format!("fvb{}x{n}", std::process::id() % 100_000),
    );
    sh(
        "ip",
        &[
            "link", "add", &va, "netns", &a.name, "type", "veth", "peer", "name", &vb, "netns",
            &b.name,
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    a.ip(&["address", "add", a_addr, "dev", &va]);
    b.ip(&["address", "add", b_addr, "dev", &vb]);
    a.ip(&["link", "set", &va, "up"]);
    b.ip(&["link", "set", &vb, "up"]);
}

/// A child process killed (SIGKILL) and reaped on drop, with its stdout lines on a channel.
#[derive(Debug)]
pub struct Proc {
    /// The child.
    pub child: Child,
    lines: Option<mpsc::Receiver<String>>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd` with stdout piped (stderr inherited).
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines: Some(rx),
            seen: Vec::new(),
        }
    }

    /// Waits up to `timeout` for a stdout line starting with `prefix`.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let rx = self.lines.as_ref().ok_or("no stdout")?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return Ok(l);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "no line {prefix:?} within {timeout:?}; saw {:?}",
                        self.seen
                    ))
                }
            }
        }
    }

    /// Sends `sig` and waits up to `timeout` for the exit code.
    pub fn signal_and_wait(&mut self, sig: libc::c_int, timeout: Duration) -> Option<i32> {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        self.wait(timeout)
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A wireguard-go peer inside a namespace (foreground, so it dies with its `Proc`).
#[derive(Debug)]
pub struct WgGo {
    /// Interface name.
    pub ifname: String,
    _proc: Proc,
}

impl Drop for WgGo {
    fn drop(&mut self) {
        // Killed, wireguard-go cannot remove its socket; a later run may reuse the name.
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
    }
}

impl WgGo {
    /// Starts `wireguard-go -f` in `ns`, applies `conf` with `wg setconf`, adds `address`.
    pub fn start(ns: &Netns, conf: &str, address: &str, mtu: u32) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let ifname = format!("wg{}x{n}", std::process::id() % 100_000);
        // A socket left by an earlier run whose pid matched (killed peers leave theirs) would
        // look like this one's before it listens.
        let sock = PathBuf::from(format!("/var/run/wireguard/{ifname}.sock"));
        let _ = std::fs::remove_file(&sock);
        let mut c = ns.cmd("wireguard-go");
        c.args(["-f", &ifname])
            .env("WG_PROCESS_FOREGROUND", "1")
            .stderr(Stdio::null());
        let p = Proc::spawn(c);
        // wireguard-go creates the interface and its UAPI socket shortly after start: wait
        // until the socket answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "wireguard-go did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let file = std::env::temp_dir().join(format!("{ifname}.conf"));
        std::fs::write(&file, conf).unwrap_or_else(|e| panic!("{e}"));
        let r = ns.cmd("wg").args(["setconf", &ifname]).arg(&file).output();
        let _ = std::fs::remove_file(&file);
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            r.status.success(),
            "wg setconf: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        ns.ip(&["address", "add", address, "dev", &ifname]);
        ns.ip(&["link", "set", &ifname, "mtu", &mtu.to_string(), "up"]);
        Self { ifname, _proc: p }
    }
}

/// Generates a WireGuard key pair with `wg` (base64 private, public).
pub fn wg_keypair() -> (String, String) {
    let private = sh("wg", &["genkey"])
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
        .to_string();
    let mut c = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut i) = c.stdin.take() {
        use std::io::Write as _;
        let _ = i.write_all(private.as_bytes());
    }
    let out = c.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    (
        private,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// The `ferry` binary next to the test executable (target/<profile>/ferry).
pub fn ferry_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap_or_else(|| panic!("no target dir"));
    let bin = dir.join("ferry");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p ferry-cli`",
        bin.display()
    );
    bin
}

/// The `ferry-helper` binary next to the test executable (target/<profile>/ferry-helper).
pub fn helper_bin() -> PathBuf {
    let bin = ferry_bin().with_file_name("ferry-helper");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p ferry-helper`",
        bin.display()
    );
    bin
}

/// A TCP forwarder listening on `listen_ns`'s loopback whose upstream connections are made
/// from `dial_ns` (to `to`). Runs until the process ends; returns its address.
pub fn forward_from(
    listen_ns: &Netns,
    dial_ns: &Netns,
    to: std::net::SocketAddr,
) -> std::net::SocketAddr {
    let listener = listen_ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .join()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    dial_ns.run(move || {
        for client in listener.incoming().flatten() {
            // Threads spawned here stay in `dial_ns`.
            std::thread::spawn(move || {
                let Ok(server) = std::net::TcpStream::connect(to) else {
                    return;
                };
                let (mut c2, mut s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => return,
                };
                let up = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                let (mut c, mut s) = (client, server);
                let _ = std::io::copy(&mut s, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
    addr
}

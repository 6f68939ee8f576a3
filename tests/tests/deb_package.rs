//! The `.deb` as a user gets it: install the package built by `npm run tauri -- build --bundles
//! deb` (path in `FERRY_DEB`; `scripts/test.sh` builds it with `--debug` and sets it), check the
//! helper's systemd unit with `systemd-analyze verify` and `security --offline=yes`, start the
//! unit's `ExecStart` line (no systemd runs as PID 1 on CI machines) in a network namespace,
//! connect with the installed `ferry connect --all` as an ordinary user in group `ferry` against
//! the lab in another namespace, check that traffic flows through the tunnel and that nothing
//! leaves outside it, disconnect, and purge the package. Root only; skips with a reason otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_tests::lab::{ferry_bin, LabProcess};
use ferry_tests::netns::{sh, skip_unless_root, veth, Netns, Proc};
use serde_json::Value;

const LAB_IP: &str = "10.203.0.1";
const CLIENT_IP: &str = "10.203.0.2";
/// Only on the lab namespace's loopback: the client namespace reaches it only through the exit.
const HIDDEN_IP: &str = "10.204.0.1";
const USER: &str = "ferrydeb";
const WAIT: Duration = Duration::from_secs(30);

/// The installed files the package must ship.
const SHIPPED: &[&str] = &[
    "/usr/bin/ferry",
    "/usr/bin/ferry-desktop",
    "/usr/libexec/ferry/ferry-helper",
    "/lib/systemd/system/ferry-helper.service",
    "/usr/lib/sysusers.d/ferry.conf",
    "/usr/share/applications/Ferry.desktop",
];

fn run(cmd: &str, args: &[&str]) -> String {
    sh(cmd, args).unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"))
}

/// Serves `body` to every connection on `listener`.
fn serve(listener: TcpListener, body: String) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { break };
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes());
            });
        }
    });
}

fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Counts TCP connections and UDP datagrams that arrive on the lab side of the veth, outside
/// the tunnel (the WireGuard endpoint and the lab's API ports are elsewhere).
struct LeakCounter {
    tcp: Arc<AtomicU64>,
    udp: Arc<AtomicU64>,
    tcp_addr: SocketAddr,
    udp_addr: SocketAddr,
}

impl LeakCounter {
    fn start(ns: &Netns) -> Self {
        let (tl, ul) = ns
            .run(|| {
                (
                    TcpListener::bind(format!("{LAB_IP}:0")).unwrap(),
                    UdpSocket::bind(format!("{LAB_IP}:0")).unwrap(),
                )
            })
            .join()
            .unwrap();
        let (tcp, udp) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (tcp_addr, udp_addr) = (tl.local_addr().unwrap(), ul.local_addr().unwrap());
        let t = tcp.clone();
        std::thread::spawn(move || {
            for c in tl.incoming() {
                if c.is_ok() {
                    t.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let u = udp.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while ul.recv_from(&mut buf).is_ok() {
                u.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self {
            tcp,
            udp,
            tcp_addr,
            udp_addr,
        }
    }

    /// Sends one TCP and one UDP probe from `ns` straight at the counter (the routes would take
    /// them into the tunnel, so they are bound to the veth as a leaking app would be); returns
    /// how many of them arrived, awaiting arrivals for up to `grace`.
    fn probe(&self, ns: &Netns, dev: &str, grace: Duration) -> u64 {
        let before = self.tcp.load(Ordering::SeqCst) + self.udp.load(Ordering::SeqCst);
        let (tcp_addr, udp_addr, dev) = (self.tcp_addr, self.udp_addr, dev.to_string());
        ns.run(move || {
            use socket2::{Domain, Socket, Type};
            let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
            udp.bind_device(Some(dev.as_bytes())).unwrap();
            let _ = udp.send_to(b"leak?", &udp_addr.into());
            let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            tcp.bind_device(Some(dev.as_bytes())).unwrap();
            let _ = tcp.connect_timeout(&tcp_addr.into(), Duration::from_secs(2));
        })
        .join()
        .unwrap();
        let deadline = Instant::now() + grace;
        loop {
            let now = self.tcp.load(Ordering::SeqCst) + self.udp.load(Ordering::SeqCst);
            if now - before >= 2 || Instant::now() >= deadline {
                return now - before;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Deletes the test user and purges the package even when the test fails half-way.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = sh("apt-get", &["purge", "-y", "-qq", "ferry"]);
        let _ = sh("userdel", &[USER]);
    }
}

fn exec_start(unit: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(unit).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {text}"));
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_package_installs_connects_an_ordinary_user_without_leaks_and_purges_cleanly() {
    let Some(deb) = std::env::var_os("FERRY_DEB")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
    else {
        eprintln!(
            "skipping the .deb test: FERRY_DEB is not set (scripts/test.sh builds the package and sets it)"
        );
        return;
    };
    if skip_unless_root(
        "the .deb test",
        &["apt-get", "systemd-analyze", "setpriv", "keyctl", "nft"],
    ) {
        return;
    }
    assert!(deb.is_file(), "FERRY_DEB={} is not a file", deb.display());
    let _ = sh("userdel", &[USER]);
    run(
        "useradd",
        &[
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            USER,
        ],
    );
    let _cleanup = Cleanup;

    // Install as `sudo apt install ./ferry.deb` by USER would: postinst adds SUDO_USER to `ferry`.
    let out = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .arg(&deb)
        .env("SUDO_USER", USER)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    assert!(out.status.success(), "apt-get install: {out:?}");
    for f in SHIPPED {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let groups = run("id", &["-nG", USER]);
    assert!(
        groups.split_whitespace().any(|g| g == "ferry"),
        "postinst added the installing user to group ferry: {groups}"
    );

    // The unit: valid, and hardened to an exposure of at most 5.
    let unit = Path::new("/lib/systemd/system/ferry-helper.service");
    let verify = Command::new("systemd-analyze")
        .args(["verify"])
        .arg(unit)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {verify:?}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout).into_owned();
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ferry-helper.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure in {text}"));
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(exposure <= 5.0, "exposure {exposure} > 5:\n{text}");

    // Two namespaces: the lab (and a server only the exit node reaches) and the client.
    let lab_ns = Netns::new("dla");
    let client = Netns::new("dlb");
    veth(
        &lab_ns,
        &client,
        &format!("{LAB_IP}/24"),
        &format!("{CLIENT_IP}/24"),
    );
    lab_ns.ip(&["address", "add", &format!("{HIDDEN_IP}/32"), "dev", "lo"]);
    let body = format!("through the packaged ferry {}", rand::random::<u64>());
    let listener = lab_ns
        .run(|| TcpListener::bind(format!("{HIDDEN_IP}:0")).unwrap())
        .join()
        .unwrap();
    let target = listener.local_addr().unwrap();
    serve(listener, body.clone());
    let leaks = LeakCounter::start(&lab_ns);
    let client_dev = client
        .ip(&["-o", "link", "show", "type", "veth"])
        .split(':')
        .nth(1)
        .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while client.ip(&["-o", "link", "show"]).contains("NO-CARRIER") {
        assert!(Instant::now() < deadline, "veth carrier never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        leaks.probe(&client, &client_dev, Duration::from_secs(3)),
        2,
        "positive control: before connecting, probes arrive"
    );

    let mut lab_cmd = lab_ns.cmd(ferry_bin().to_str().unwrap());
    lab_cmd.args(["lab", "--listen", &format!("{LAB_IP}:0"), "--egress", "any"]);
    let lab = LabProcess::start_command(lab_cmd).expect("lab starts");
    let lab_addr: SocketAddr = lab
        .urls
        .orbnet
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The lab's API as the client's loopback sees it, dialled from the lab's side (a service
    // on the internet is reached without crossing the client's own firewall; the WireGuard
    // traffic and the probes do cross it).
    let local = ferry_tests::netns::forward_from(&client, &lab_ns, lab_addr);
    let orbnet_url = lab
        .urls
        .orbnet
        .replace(&lab_addr.to_string(), &local.to_string());

    // The helper, exactly as the unit starts it, in the client's namespace.
    let exec = exec_start(unit);
    let mut helper_cmd = client.cmd(&exec[0]);
    helper_cmd.args(&exec[1..]);
    let _helper = Proc::spawn(helper_cmd);
    let sock = exec
        .windows(2)
        .find(|w| w[0] == "--socket")
        .map(|w| w[1].clone())
        .unwrap_or_else(|| "/run/ferry/helper.sock".into());
    let deadline = Instant::now() + WAIT;
    while !Path::new(&sock).exists() {
        assert!(Instant::now() < deadline, "the helper never made {sock}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The ordinary user, with its own data dir and a private session keyring.
    let home = tempfile::tempdir().unwrap();
    run(
        "chown",
        &[&format!("{USER}:{USER}"), home.path().to_str().unwrap()],
    );
    let as_user = |script: &str| {
        // setpriv execs (no parent left to catch signals), so SIGINT reaches ferry itself.
        let mut cmd = client.cmd("setpriv");
        cmd.args([
            &format!("--reuid={USER}"),
            &format!("--regid={USER}"),
            "--init-groups",
            "--",
            "keyctl",
            "session",
            "-",
            "sh",
            "-c",
            script,
        ])
        .env("HOME", home.path())
        .env("FERRY_DATA_DIR", home.path().join("ferry"))
        .env("FERRY_SECRETS", "keyutils")
        .env(
            "FERRY_KEYRING_SERVICE",
            format!("ferry-deb-test-{}", std::process::id()),
        )
        .env("FERRY_ORBNET_URL", &orbnet_url)
        .env("FERRY_HEARTBEAT_SECS", "1")
        .env("FERRY_TEST_PASSWORD", "orbnet-demo-pass")
        .env_remove("FERRY_ORBNET_TOKEN")
        .env_remove("FERRY_TUNNELBYTE_TOKEN")
        .env_remove("FERRY_NEOSC_TOKEN");
        cmd
    };
    let status = as_user("exec /usr/bin/ferry status --json")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "ferry status as {USER}: {status:?}"
    );

    let mut ferry = Proc::spawn(as_user(
        "printf '%s\\n' \"$FERRY_TEST_PASSWORD\" | /usr/bin/ferry login orbnet --email demo@orbnet.lab --password-stdin >&2 && \
         exec /usr/bin/ferry connect --all --json --service orbnet",
    ));
    let line = ferry
        .wait_line("{\"event\":\"connected\"", WAIT)
        .unwrap_or_else(|e| panic!("{e}"));
    let connected: Value = serde_json::from_str(&line).unwrap();
    assert!(connected["proxy"].is_null(), "system mode: {connected}");

    let got = client
        .run(move || http_get(target))
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("GET {target} through the tunnel: {e}"));
    assert!(got.ends_with(&body), "{got}");
    assert_eq!(
        leaks.probe(&client, &client_dev, Duration::from_secs(2)),
        0,
        "connected: nothing leaves outside the tunnel"
    );
    ferry
        .wait_line("{\"event\":\"heartbeat\"", WAIT)
        .unwrap_or_else(|e| panic!("{e}"));

    // A user disconnect (SIGINT) ends the session and lifts the block.
    let code = ferry.signal_and_wait(libc::SIGINT, WAIT);
    assert_eq!(code, Some(0), "clean exit; saw {:?}", ferry.seen);
    assert_eq!(
        leaks.probe(&client, &client_dev, Duration::from_secs(3)),
        2,
        "positive control: after a user disconnect, probes arrive"
    );
    let tables = client.cmd("nft").args(["list", "tables"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("ferry"),
        "no kill-switch table after a user disconnect: {tables:?}"
    );
    drop(_helper);

    // Purge: nothing of the package is left.
    let out = Command::new("apt-get")
        .args(["purge", "-y", "-qq", "ferry"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    assert!(out.status.success(), "apt-get purge: {out:?}");
    for f in SHIPPED.iter().chain(["/var/lib/ferry-helper"].iter()) {
        assert!(!Path::new(f).exists(), "{f} left after purge");
    }
    let listed = Command::new("dpkg").args(["-s", "ferry"]).output().unwrap();
    assert!(
        !listed.status.success(),
        "dpkg still knows ferry after purge"
    );
}

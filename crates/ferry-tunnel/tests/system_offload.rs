//! Ferry's system mode at both ends of a veth pair between two fresh network namespaces, with
//! the TUN offloads (TSO segmentation, receive coalescing) on at both ends and on at one end
//! only: TCP transfers both ways must arrive byte for byte. Root only; skips with a reason
//! otherwise. The tunnels run in this process, each on a thread that entered its namespace
//! (threads, TUN devices and `ip` commands started from it stay in that namespace).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use ferry_tunnel::keys::PrivateKey;
use ferry_tunnel::system::tun::TUN_OFFLOAD_ENV;
use ferry_tunnel::tunnel::{Mode, SystemOptions, Tunnel};
use ferry_tunnel::wgconf::WgConfig;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TRANSFER: usize = 24 * 1024 * 1024;

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, TUN)");
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun");
    }
    None
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("fto-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Self(name)
    }

    /// Moves the calling thread into this namespace.
    fn enter(&self) {
        let f = std::fs::File::open(format!("/var/run/netns/{}", self.0)).unwrap();
        // SAFETY: setns on a namespace file we hold open; affects only the calling thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A tunnel running on its own thread inside a namespace; stopped on drop.
struct NsTunnel {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl NsTunnel {
    /// Brings the tunnel up in `ns`; returns once `Tunnel::up` has returned.
    fn start(ns: &Netns, conf: String, ifname: &str, tun_offload: bool) -> Self {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = std::env::temp_dir().join(format!("{}-{ifname}", ns.0));
        let ifname = ifname.to_string();
        let ns_name = ns.0.clone();
        let thread = std::thread::spawn(move || {
            Netns(ns_name.clone()).enter_and_forget();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // Read by `Tunnel::up` when it opens the TUN device.
                std::env::set_var(TUN_OFFLOAD_ENV, if tun_offload { "1" } else { "0" });
                let cfg = WgConfig::parse(&conf).unwrap();
                let opts = SystemOptions {
                    ifname,
                    state_dir: state.clone(),
                    ..SystemOptions::default()
                };
                let t = Tunnel::up(cfg, Mode::System(opts)).await.unwrap();
                ready_tx.send(()).unwrap();
                let _ = stop_rx.await;
                t.down().await.unwrap();
                let _ = std::fs::remove_dir_all(&state);
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("tunnel up");
        Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Netns {
    /// Enters the namespace without deleting it when this handle goes away.
    fn enter_and_forget(self) {
        self.enter();
        std::mem::forget(self);
    }
}

impl Drop for NsTunnel {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` from a thread in `from` to a listener in `to` at `addr`; returns what arrived.
fn transfer(from: &Netns, to: &Netns, addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let (ltx, lrx) = mpsc::channel();
    let to_name = to.0.clone();
    let server = std::thread::spawn(move || {
        Netns(to_name).enter_and_forget();
        let l = TcpListener::bind(addr).unwrap();
        ltx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::with_capacity(TRANSFER);
        s.read_to_end(&mut got).unwrap();
        got
    });
    lrx.recv_timeout(Duration::from_secs(5)).unwrap();
    let from_name = from.0.clone();
    let client = std::thread::spawn(move || {
        Netns(from_name).enter_and_forget();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("connect {addr}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("connect {addr}: {e}"),
            }
        };
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&data).unwrap();
    });
    client.join().unwrap();
    server.join().unwrap()
}

fn run(tag: &str, a_offload: bool, b_offload: bool) {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    let (va, vb) = (format!("fto{tag}a"), format!("fto{tag}b"));
    ip(&[
        "link", "add", &va, "netns", &a.0, "type", "veth", "peer", "name", &vb, "netns", &b.0,
    ]);
    ip(&["-n", &a.0, "addr", "add", "198.18.7.1/24", "dev", &va]);
    ip(&["-n", &b.0, "addr", "add", "198.18.7.2/24", "dev", &vb]);
    ip(&["-n", &a.0, "link", "set", &va, "up"]);
    ip(&["-n", &b.0, "link", "set", &vb, "up"]);

    let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
    let conf_b = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\nListenPort = 51900\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.77.0.1/32\n",
        kb.to_base64(),
        ka.public_key()
    );
    let conf_a = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.1/24\n[Peer]\nPublicKey = {}\nEndpoint = 198.18.7.2:51900\nAllowedIPs = 10.77.0.2/32\n",
        ka.to_base64(),
        kb.public_key()
    );
    let tb = NsTunnel::start(&b, conf_b, "ftob", b_offload);
    let ta = NsTunnel::start(&a, conf_a, "ftoa", a_offload);

    let up = pattern(TRANSFER, 7);
    let got = transfer(&a, &b, "10.77.0.2:5001".parse().unwrap(), up.clone());
    assert_eq!(got.len(), up.len(), "A->B length ({tag})");
    assert!(got == up, "A->B bytes differ ({tag})");
    let down = pattern(TRANSFER, 11);
    let got = transfer(&b, &a, "10.77.0.1:5002".parse().unwrap(), down.clone());
    assert_eq!(got.len(), down.len(), "B->A length ({tag})");
    assert!(got == down, "B->A bytes differ ({tag})");
    drop(ta);
    drop(tb);
}

#[test]
fn tcp_through_ferry_to_ferry_with_offloads_on_both_and_one_end() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    run("on", true, true);
    run("mix", true, false);
}

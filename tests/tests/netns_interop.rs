//! Ferry's system mode as a client of an independent WireGuard peer (Debian's wireguard-go) in
//! two fresh network namespaces joined by a veth pair: ping, and 50 MB over TCP each way with a
//! checksum. Root only; skips with a reason otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use ferry_tests::netns::{ferry_bin, skip_unless_root, veth, wg_keypair, Netns, Proc, WgGo};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const TRANSFER: usize = 50 * 1024 * 1024;

/// Two namespaces: `client` (Ferry) and `server` (wireguard-go at 10.99.0.1).
struct Setup {
    client: Netns,
    server: Netns,
    _wg: WgGo,
    conf: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.conf);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn setup(tag: &str, extra_allowed: &str) -> Setup {
    let client = Netns::new(&format!("{tag}c"));
    let server = Netns::new(&format!("{tag}s"));
    veth(&client, &server, "198.18.0.1/24", "198.18.0.2/24");
    let (server_key, server_pub) = wg_keypair();
    let (client_key, client_pub) = wg_keypair();
    let wg = WgGo::start(
        &server,
        &format!("[Interface]\nPrivateKey = {server_key}\nListenPort = 51820\n[Peer]\nPublicKey = {client_pub}\nAllowedIPs = 10.99.0.2/32\n"),
        "10.99.0.1/24",
        1420,
    );
    let conf = std::env::temp_dir().join(format!("{}.conf", client.name));
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {client_key}\nAddress = 10.99.0.2/32\nDNS = 10.99.0.53\n\n[Peer]\nPublicKey = {server_pub}\nEndpoint = 198.18.0.2:51820\nAllowedIPs = 0.0.0.0/0{extra_allowed}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let state = std::env::temp_dir().join(format!("{}-state", client.name));
    Setup {
        client,
        server,
        _wg: wg,
        conf,
        state,
    }
}

fn ferry_up(s: &Setup, state_dir: &std::path::Path) -> Proc {
    let mut c = s.client.cmd(ferry_bin().to_str().unwrap());
    c.args(["up", "--all", "--stats-interval", "0", "--state-dir"])
        .arg(state_dir)
        .arg(&s.conf);
    Proc::spawn(c)
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

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut v = Vec::with_capacity(TRANSFER);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.read_to_end(&mut v).unwrap();
    v
}

#[test]
fn system_mode_client_to_wireguard_go_ping_and_50mb_tcp_both_ways() {
    if skip_unless_root("netns interop", &["wireguard-go", "wg", "ping"]) {
        return;
    }
    let s = setup("io", "");
    let state = s.state.clone();
    let before = s.client.snapshot();
    let mut up = ferry_up(&s, &state);
    let hs = up.wait_line("handshake:", Duration::from_secs(10)).unwrap();
    eprintln!("{hs}");

    let ping = s
        .client
        .cmd("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", "10.99.0.1"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "ping through the tunnel: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    assert!(
        s.client.resolv_conf().contains("nameserver 10.99.0.53"),
        "DNS applied"
    );

    // client -> server
    let data = pattern(TRANSFER, 7);
    let want = fnv(&data);
    let listener = s
        .server
        .run(|| TcpListener::bind("10.99.0.1:5001").unwrap())
        .join()
        .unwrap();
    let recv = std::thread::spawn(move || fnv(&read_all(listener.accept().unwrap().0)));
    let t0 = std::time::Instant::now();
    s.client
        .run(move || {
            let mut c = TcpStream::connect_timeout(
                &"10.99.0.1:5001".parse().unwrap(),
                Duration::from_secs(5),
            )
            .unwrap();
            c.write_all(&data).unwrap();
        })
        .join()
        .unwrap();
    assert_eq!(recv.join().unwrap(), want, "client->server checksum");
    eprintln!("50 MB client->server in {:?}", t0.elapsed());

    // server -> client
    let data = pattern(TRANSFER, 11);
    let want = fnv(&data);
    let listener = s
        .server
        .run(|| TcpListener::bind("10.99.0.1:5002").unwrap())
        .join()
        .unwrap();
    let send = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(&data).unwrap();
    });
    let t0 = std::time::Instant::now();
    let got = s
        .client
        .run(|| {
            fnv(&read_all(
                TcpStream::connect_timeout(
                    &"10.99.0.1:5002".parse().unwrap(),
                    Duration::from_secs(5),
                )
                .unwrap(),
            ))
        })
        .join()
        .unwrap();
    send.join().unwrap();
    assert_eq!(got, want, "server->client checksum");
    eprintln!("50 MB server->client in {:?}", t0.elapsed());

    assert_eq!(
        up.signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0),
        "clean exit on SIGINT"
    );
    assert_eq!(
        s.client.snapshot(),
        before,
        "everything undone after disconnect"
    );
}

#[test]
fn system_mode_leaves_nothing_behind_after_error_and_after_kill_9() {
    if skip_unless_root("netns leftovers", &["wireguard-go", "wg"]) {
        return;
    }
    // After an error: IPv6 is off in the client namespace, so the ::/0 route fails after the
    // IPv4 full-tunnel rules, sysctl and addresses were already set up.
    let s = setup("lb", ", ::/0");
    let state = s.state.clone();
    s.client
        .cmd("sysctl")
        .args(["-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        .status()
        .unwrap();
    let before = s.client.snapshot();
    let mut up = ferry_up(&s, &state);
    let code = up.wait(Duration::from_secs(10));
    assert!(
        matches!(code, Some(c) if c != 0),
        "ferry up must fail: {code:?}"
    );
    assert_eq!(
        s.client.snapshot(),
        before,
        "everything undone after an error"
    );
    s.client
        .cmd("sysctl")
        .args(["-q", "-w", "net.ipv6.conf.all.disable_ipv6=0"])
        .status()
        .unwrap();

    // After kill -9: rules and DNS stay behind until the next start reverts them.
    let before = s.client.snapshot();
    let mut up = ferry_up(&s, &state);
    up.wait_line("handshake:", Duration::from_secs(10)).unwrap();
    let during = s.client.snapshot();
    assert_ne!(during, before);
    assert_eq!(
        up.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)),
        Some(-1)
    );
    let crashed = s.client.snapshot();
    assert_ne!(
        crashed, before,
        "a crash leaves rules/DNS behind (this is what recovery is for)"
    );
    assert!(crashed.contains("fwmark"), "{crashed}");
    let mut up = ferry_up(&s, &state);
    up.wait_line("handshake:", Duration::from_secs(10)).unwrap();
    assert_eq!(
        up.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)),
        Some(0)
    );
    assert_eq!(
        s.client.snapshot(),
        before,
        "everything undone after kill -9 and a restart"
    );
    assert_eq!(
        std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0),
        0,
        "journal removed"
    );
}

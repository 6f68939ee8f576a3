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

/// Serves `body` over HTTP/1.1 on `listener` (bound inside some namespace) until the test ends.
fn serve_http(listener: TcpListener, body: String) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { break };
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
}

/// `GET /` on `addr` from the calling thread's namespace: the whole response.
fn http_get(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A tunnelbyte session with a client-generated key, created from inside `ns` against the lab:
/// the wg-quick text and the client's private key (base64).
fn tunnelbyte_session(ns: &Netns, lab: &ferry_tests::lab::LabUrls) -> (String, String) {
    // The client sends its token over plain http only to loopback: reach the lab (in another
    // namespace) through a forwarder on this namespace's 127.0.0.1.
    let host = lab
        .tunnelbyte
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let local = ns.forward_tcp(host.parse().unwrap());
    let tb = lab.tunnelbyte.replace(&host, &local.to_string());
    let control = lab.control.clone();
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let acc: serde_json::Value = reqwest::get(format!("{control}/accounts"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let token = acc["tunnelbyte"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["tier"] == "paid")
                .unwrap()["token"]
                .as_str()
                .unwrap()
                .to_string();
            let client = ferry_core::services::tunnelbyte::TunnelbyteClient::new(
                &tb,
                ferry_core::http::HttpSettings::default(),
            )
            .unwrap()
            .with_token(Some(token.as_str().into()));
            let key = ferry_core::services::keys::WgKeypair::generate();
            let created = client.create_session("fsn", &key).await.unwrap();
            (created.wg_config, key.private_base64().expose().to_string())
        })
    })
    .join()
    .unwrap()
}

/// `wg setconf` text and the IPv4 address (with prefix) from a wg-quick config without a
/// private key: wg-quick-only keys (Address, DNS, MTU) are left out, `PrivateKey` added.
fn setconf_from_wg_quick(wg_quick: &str, private_key: &str) -> (String, String) {
    let mut conf = format!("[Interface]\nPrivateKey = {private_key}\n");
    let mut address = String::new();
    let mut in_peer = false;
    for line in wg_quick.lines().map(str::trim) {
        if line.eq_ignore_ascii_case("[peer]") {
            in_peer = true;
            conf.push_str("[Peer]\n");
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("address") {
            address = v
                .split(',')
                .map(str::trim)
                .find(|a| a.contains('.'))
                .unwrap_or_default()
                .to_string();
        } else if in_peer {
            conf.push_str(&format!("{k} = {v}\n"));
        }
    }
    assert!(!address.is_empty(), "no IPv4 Address in {wg_quick}");
    (conf, address)
}

/// Asks the exit node's resolver (inside the tunnel) for `localhost`'s A record from the calling
/// thread's namespace; returns the answer's address. Resends a few times (the first datagram
/// may wait for the handshake).
fn resolve_localhost_via(dns: std::net::SocketAddr) -> Result<std::net::Ipv4Addr, String> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    // id 0x4242, recursion desired, one question: localhost IN A.
    let mut query = vec![0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9];
    query.extend_from_slice(b"localhost");
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut buf = [0u8; 512];
    for _ in 0..10 {
        sock.send_to(&query, dns).map_err(|e| e.to_string())?;
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let answer = &buf[..n];
        if n < 16 || answer[..2] != [0x42, 0x42] || answer[3] & 0x0f != 0 || answer[7] == 0 {
            return Err(format!("bad DNS answer {answer:02x?}"));
        }
        let a = &answer[n - 4..];
        return Ok(std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]));
    }
    Err(format!("no DNS answer from {dns}"))
}

#[test]
fn wireguard_go_client_through_the_lab_exit_node_ping_dns_and_http_on_its_loopback() {
    if skip_unless_root(
        "wireguard-go client to the lab's exit node",
        &["wireguard-go", "wg", "sysctl", "ping"],
    ) {
        return;
    }
    let client = Netns::new("exc");
    let exit = Netns::new("exs");
    veth(&client, &exit, "198.18.2.2/24", "198.18.2.1/24");
    // The lab (loopback egress) and an HTTP server on its namespace's 127.0.0.1.
    let mut lab_cmd = exit.cmd(ferry_bin().to_str().unwrap());
    lab_cmd.args(["lab", "--listen", "198.18.2.1:0", "--egress", "loopback"]);
    let lab = ferry_tests::lab::LabProcess::start_command(lab_cmd).expect("lab starts");
    let listener = exit
        .run(|| TcpListener::bind("127.0.0.1:0").unwrap())
        .join()
        .unwrap();
    let target = listener.local_addr().unwrap();
    let body = format!(
        "served on the exit node's loopback {}",
        rand::random::<u64>()
    );
    serve_http(listener, body.clone());

    let (wg_quick, private_key) = tunnelbyte_session(&client, &lab.urls);
    let (conf, address) = setconf_from_wg_quick(&wg_quick, &private_key);
    let wg = WgGo::start(&client, &conf, &address, 1420);
    client.ip(&["route", "add", "10.64.0.1/32", "dev", &wg.ifname]);

    // Ping the exit node itself through wireguard-go (it answers echo for its own addresses).
    let ping = client
        .cmd("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", "10.64.0.1"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "ping the exit node through wireguard-go: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // UDP to the exit node's own resolver at 10.64.0.1 (answered inside the tunnel).
    let got = client
        .run(|| resolve_localhost_via("10.64.0.1:53".parse().unwrap()))
        .join()
        .unwrap();
    assert_eq!(
        got,
        Ok(std::net::Ipv4Addr::LOCALHOST),
        "DNS through wireguard-go and the exit node"
    );

    // TCP to 127.0.0.1 *through the tunnel*: in this (test-owned) client namespace 127.0.0.1
    // stops being local and is routed into the WireGuard interface, which the exit node relays
    // to its own loopback (the only egress it allows).
    client.ip(&[
        "route",
        "del",
        "local",
        "127.0.0.0/8",
        "dev",
        "lo",
        "table",
        "local",
    ]);
    client.ip(&[
        "route",
        "del",
        "local",
        "127.0.0.1",
        "dev",
        "lo",
        "table",
        "local",
    ]);
    // Answers from 127.0.0.1 arriving on the WireGuard interface are otherwise martians.
    let wg_if = wg.ifname.as_str();
    for key in [
        "net.ipv4.conf.all.route_localnet=1".to_string(),
        format!("net.ipv4.conf.{wg_if}.route_localnet=1"),
        format!("net.ipv4.conf.{wg_if}.accept_local=1"),
    ] {
        let st = client
            .cmd("sysctl")
            .args(["-q", "-w", &key])
            .status()
            .unwrap();
        assert!(st.success(), "{key}");
    }
    client.ip(&["route", "add", "127.0.0.1/32", "dev", &wg.ifname]);
    let got = client.run(move || http_get(target)).join().unwrap();
    let got = got.unwrap_or_else(|e| panic!("GET {target} through the exit node: {e}"));
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with(&body), "{got}");
    let show = client
        .cmd("wg")
        .args(["show", &wg.ifname, "transfer"])
        .output()
        .unwrap();
    eprintln!(
        "wireguard-go transfer: {}",
        String::from_utf8_lossy(&show.stdout).trim()
    );
    drop(lab);
}

#[test]
fn app_mode_socks5_to_a_wireguard_go_server() {
    if skip_unless_root("app mode to wireguard-go", &["wireguard-go", "wg", "curl"]) {
        return;
    }
    let s = setup("am", "");
    let listener = s
        .server
        .run(|| TcpListener::bind("10.99.0.1:0").unwrap())
        .join()
        .unwrap();
    let target = listener.local_addr().unwrap();
    let body = format!("behind wireguard-go {}", rand::random::<u64>());
    serve_http(listener, body.clone());

    // App mode: no TUN, no routes; a SOCKS5 proxy on the client namespace's loopback.
    let before = s.client.snapshot();
    let mut c = s.client.cmd(ferry_bin().to_str().unwrap());
    c.args(["up", "--proxy", "127.0.0.1:0", "--stats-interval", "0"])
        .arg(&s.conf);
    let mut up = Proc::spawn(c);
    let line = up
        .wait_line("up: app mode", Duration::from_secs(10))
        .unwrap();
    let socks = line
        .split("SOCKS5 ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no SOCKS5 address in {line}"))
        .trim()
        .to_string();
    let out = s
        .client
        .cmd("curl")
        .args(["-sS", "-m", "15", "--socks5", &socks])
        .arg(format!("http://{target}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl through SOCKS5: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), body);
    assert_eq!(
        s.client.snapshot(),
        before,
        "app mode changes no routes or links"
    );
    assert_eq!(
        up.signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0),
        "clean exit on SIGINT"
    );
}

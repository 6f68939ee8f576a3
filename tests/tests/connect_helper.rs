//! `ferry connect --all` through `ferry-helper` against the lab (its real WireGuard exit node),
//! as in `connect_system.rs`: the lab and a hidden HTTP server in namespace A, Ferry and the
//! helper in namespace B. The client uses the helper (`FERRY_HELPER_SOCKET`): traffic reaches
//! the hidden server only through the tunnel, a heartbeat proves the meter runs after the
//! helper acked the handshake, `ferry status` shows the session; when the tunnel dies the
//! supervisor reconnects and probes from B count zero in A while it waits and after; then
//! `ferry disconnect` from another process, and SIGINT of a second session, end them as the
//! user's disconnect (`user_initiated`) and clear the block, leaving B as it was. Root only;
//! skips with a reason otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use ferry_tests::lab::{ferry_bin, LabProcess};
use ferry_tests::netns::{helper_bin, skip_unless_root, veth, Netns, Proc};
use serde_json::Value;

/// Lab side of the veth pair (the lab's HTTP APIs and WireGuard endpoint).
const LAB_IP: &str = "10.201.0.1";
/// An address only on namespace A's loopback: namespace B has no route to it.
const HIDDEN_IP: &str = "10.202.0.1";
const WAIT: Duration = Duration::from_secs(20);

/// Serves `body` to every connection on `listener` (a socket bound inside namespace A).
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

/// `GET /` on `addr` from the calling thread's namespace; the whole response.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// rx and tx byte counters of `dev` in `ns`.
fn link_bytes(ns: &Netns, dev: &str) -> (u64, u64) {
    let out = ns.ip(&["-s", "-j", "link", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let s = &v[0]["stats64"];
    (
        s["rx"]["bytes"].as_u64().unwrap_or_else(|| panic!("{out}")),
        s["tx"]["bytes"].as_u64().unwrap_or_else(|| panic!("{out}")),
    )
}

fn event_line(p: &mut Proc, event: &str, timeout: Duration) -> Value {
    let line = p
        .wait_line(&format!("{{\"event\":\"{event}\""), timeout)
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Counts, in A, TCP/UDP probes from B's own address to the lab's address (port 9 and DNS).
fn install_counter(a: &Netns) {
    let script = "table inet probe {\n counter seen {}\n chain pre {\n  type filter hook prerouting priority -300; policy accept;\n  ip saddr 10.201.0.2 tcp dport { 9, 53 } counter name seen\n  ip saddr 10.201.0.2 udp dport { 9, 53 } counter name seen\n }\n}\n";
    a.nft(script);
}

fn reset_counter(a: &Netns) {
    let out = a
        .cmd("nft")
        .args(["reset", "counters", "table", "inet", "probe"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

fn probes_seen(a: &Netns) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    let out = a
        .cmd("nft")
        .args(["-j", "list", "counter", "inet", "probe", "seen"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["counter"]["packets"].as_u64())
        .unwrap()
}

/// TCP and UDP (port 9 and 53) from B to the lab's address, outside any tunnel route.
fn probe_lab(b: &Netns) {
    b.run(|| {
        for port in [9u16, 53] {
            let to: SocketAddr = format!("{LAB_IP}:{port}").parse().unwrap();
            let _ = TcpStream::connect_timeout(&to, Duration::from_millis(300));
            if let Ok(u) = std::net::UdpSocket::bind("0.0.0.0:0") {
                let _ = u.send_to(b"probe", to);
            }
        }
    })
    .join()
    .unwrap();
}

#[test]
fn connect_all_through_the_helper_meters_blocks_while_reconnecting_and_ends_on_the_users_disconnect(
) {
    if skip_unless_root(
        "connect --all through ferry-helper",
        &["mount", "keyctl", "nft"],
    ) {
        return;
    }
    let a = Netns::new("cha");
    let b = Netns::new("chb");
    veth(&a, &b, &format!("{LAB_IP}/24"), "10.201.0.2/24");
    a.ip(&["address", "add", &format!("{HIDDEN_IP}/32"), "dev", "lo"]);
    let body = format!("through the helper's tunnel {}", rand::random::<u64>());
    let listener = a
        .run(|| TcpListener::bind(format!("{HIDDEN_IP}:0")).unwrap())
        .join()
        .unwrap();
    let target = listener.local_addr().unwrap();
    serve(listener, body.clone());

    let mut lab_cmd = a.cmd(ferry_bin().to_str().unwrap());
    lab_cmd.args(["lab", "--listen", &format!("{LAB_IP}:0"), "--egress", "any"]);
    let lab = LabProcess::start_command(lab_cmd).expect("lab starts in namespace A");
    let lab_addr: SocketAddr = lab
        .urls
        .orbnet
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The lab's API, as B's loopback sees it: the forwarder listens in B but dials from A, as
    // a service on the internet is reached without crossing B's own firewall (only the
    // WireGuard traffic and the probes do).
    let local = ferry_tests::netns::forward_from(&b, &a, lab_addr);
    let orbnet_url = lab
        .urls
        .orbnet
        .replace(&lab_addr.to_string(), &local.to_string());
    let data = tempfile::tempdir().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while b.ip(&["-o", "link", "show"]).contains("NO-CARRIER") {
        assert!(
            std::time::Instant::now() < deadline,
            "veth carrier never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = b.snapshot();

    // The helper, in B, with its socket and journal in the test's directory.
    let socket = data.path().join("helper.sock");
    let mut hcmd = b.cmd(helper_bin().to_str().unwrap());
    hcmd.arg("--socket")
        .arg(&socket)
        .args(["--group", "root", "--state-dir"])
        .arg(data.path().join("helper-run"))
        .arg("--journal-dir")
        .arg(data.path().join("helper-journal"));
    let _helper = Proc::spawn(hcmd);
    let ferry_in_b = |args: &[&str]| {
        let out = b
            .cmd(ferry_bin().to_str().unwrap())
            .args(args)
            .env("FERRY_HELPER_SOCKET", &socket)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let deadline = std::time::Instant::now() + WAIT;
    while ferry_in_b(&["status"]).0 != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the helper never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let keyring_service = format!("ferry-test-helper-{}", std::process::id());
    let bin = ferry_bin();
    let mut cmd = b.cmd("keyctl");
    cmd.args([
        "session",
        "-",
        "sh",
        "-c",
        "mount -t tmpfs ferry-test-run /run && \
         printf '%s\\n' \"$FERRY_TEST_PASSWORD\" | \"$0\" login orbnet --email demo@orbnet.lab --password-stdin >&2 && \
         exec \"$0\" connect --all --json --service orbnet",
        bin.to_str().unwrap(),
    ])
    .env("FERRY_SECRETS", "keyutils")
    .env("FERRY_KEYRING_SERVICE", &keyring_service)
    .env("FERRY_TEST_PASSWORD", "orbnet-demo-pass")
    .env("FERRY_DATA_DIR", data.path().join("ferry"))
    .env("HOME", data.path())
    .env("FERRY_ORBNET_URL", &orbnet_url)
    .env("FERRY_HEARTBEAT_SECS", "1")
    .env("FERRY_HELPER_SOCKET", &socket)
    .env_remove("FERRY_ORBNET_TOKEN")
    .env_remove("FERRY_TUNNELBYTE_TOKEN")
    .env_remove("FERRY_NEOSC_TOKEN");
    // Positive control: before connecting, the probes arrive.
    install_counter(&a);
    probe_lab(&b);
    assert!(
        probes_seen(&a) > 0,
        "probes reach the lab before connecting"
    );
    reset_counter(&a);
    let mut ferry = Proc::spawn(cmd);
    let connected = event_line(&mut ferry, "connected", WAIT);
    assert!(connected["proxy"].is_null(), "system mode: {connected}");

    let (code, st) = ferry_in_b(&["status", "--json"]);
    assert_eq!(code, 0, "{st}");
    let st: Value = serde_json::from_str(st.trim()).unwrap();
    assert_eq!(st["state"], "connected", "{st}");
    assert_eq!(st["label"]["service"], "orbnet", "{st}");
    assert_eq!(st["block"], true, "{st}");
    assert_eq!(st["policy"]["policy"], "tunnel_only", "{st}");

    let (rx0, _) = link_bytes(&b, "ferry0");
    let got = b.run(move || http_get(target)).join().unwrap();
    let got = got.unwrap_or_else(|e| panic!("GET {target} through the tunnel: {e}"));
    assert!(got.ends_with(&body), "{got}");
    let (rx1, _) = link_bytes(&b, "ferry0");
    assert!(
        rx1 - rx0 >= body.len() as u64,
        "the answer came in through ferry0"
    );
    event_line(&mut ferry, "heartbeat", WAIT);

    // The tunnel dies (its device is deleted): the supervisor reconnects, and while it waits
    // nothing leaves B but the lab's WireGuard endpoint (probes to the lab's address count zero
    // in A), then traffic flows through the new tunnel.
    reset_counter(&a);
    b.ip(&["link", "del", "ferry0"]);
    ferry
        .wait_line("{\"event\":\"state\",\"state\":\"reconnecting\"", WAIT)
        .unwrap();
    let (code, st) = ferry_in_b(&["status", "--json"]);
    assert_eq!(code, 0, "{st}");
    let st: Value = serde_json::from_str(st.trim()).unwrap();
    assert_eq!(st["block"], true, "blocked while reconnecting: {st}");
    probe_lab(&b);
    assert_eq!(probes_seen(&a), 0, "probes leaked while reconnecting");
    event_line(&mut ferry, "connected", WAIT);
    probe_lab(&b);
    assert_eq!(probes_seen(&a), 0, "probes leaked outside the new tunnel");
    reset_counter(&a);
    let got = b.run(move || http_get(target)).join().unwrap();
    assert!(
        got.unwrap().ends_with(&body),
        "traffic flows after the reconnect"
    );

    // `ferry disconnect` from another process: the session ends as the user's disconnect.
    let (code, out) = ferry_in_b(&["disconnect"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(ferry.wait(WAIT), Some(0), "events {:?}", ferry.seen);
    let ended = event_line(&mut ferry, "session_ended", Duration::from_secs(2));
    assert_eq!(ended["reason"], "user_initiated", "{ended}");
    let (_, st) = ferry_in_b(&["status", "--json"]);
    let st: Value = serde_json::from_str(st.trim()).unwrap();
    assert_eq!(st["block"], false, "{st}");
    assert_eq!(st["state"], "disconnected", "{st}");

    // A second session ends with SIGINT, the user's disconnect too: the block goes.
    let mut again = b.cmd(bin.to_str().unwrap());
    again
        .args(["connect", "--all", "--json", "--service", "orbnet"])
        .env("FERRY_SECRETS", "keyutils")
        .env("FERRY_KEYRING_SERVICE", &keyring_service)
        .env("FERRY_DATA_DIR", data.path().join("ferry"))
        .env("HOME", data.path())
        .env("FERRY_ORBNET_URL", &orbnet_url)
        .env("FERRY_HEARTBEAT_SECS", "1")
        .env("FERRY_HELPER_SOCKET", &socket)
        .env_remove("FERRY_ORBNET_TOKEN");
    let mut again = Proc::spawn(again);
    event_line(&mut again, "connected", WAIT);
    // Metered (as connect_system does) before the user's SIGINT.
    event_line(&mut again, "heartbeat", WAIT);
    assert_eq!(again.signal_and_wait(libc::SIGINT, WAIT), Some(0));
    let ended = event_line(&mut again, "session_ended", Duration::from_secs(2));
    assert_eq!(ended["reason"], "user_initiated", "{ended}");
    let (_, st) = ferry_in_b(&["status", "--json"]);
    let st: Value = serde_json::from_str(st.trim()).unwrap();
    assert_eq!(st["block"], false, "{st}");

    // A third attempt whose endpoint never answers (A drops B's UDP): it fails after the
    // handshake timeout, and the block stays until the user disconnects.
    let drop_udp = "table inet blackhole {\n chain pre {\n  type filter hook prerouting priority -400; policy accept;\n  ip saddr 10.201.0.2 meta l4proto udp drop\n }\n}\n";
    a.nft(drop_udp);
    let mut third = b.cmd(bin.to_str().unwrap());
    third
        .args([
            "connect",
            "--all",
            "--json",
            "--service",
            "orbnet",
            "--handshake-timeout",
            "2",
        ])
        .env("FERRY_SECRETS", "keyutils")
        .env("FERRY_KEYRING_SERVICE", &keyring_service)
        .env("FERRY_DATA_DIR", data.path().join("ferry"))
        .env("HOME", data.path())
        .env("FERRY_ORBNET_URL", &orbnet_url)
        .env("FERRY_HELPER_SOCKET", &socket)
        .env_remove("FERRY_ORBNET_TOKEN");
    let mut third = Proc::spawn(third);
    let code = third.wait(WAIT);
    assert!(
        matches!(code, Some(c) if c != 0),
        "the attempt fails: {code:?} {:?}",
        third.seen
    );
    let (_, st) = ferry_in_b(&["status", "--json"]);
    let st: Value = serde_json::from_str(st.trim()).unwrap();
    assert_eq!(st["block"], true, "blocked after the failed attempt: {st}");
    reset_counter(&a);
    probe_lab(&b);
    assert_eq!(probes_seen(&a), 0, "probes leaked after the failed attempt");
    let (code, out) = ferry_in_b(&["disconnect"]);
    assert_eq!(code, 0, "{out}");
    probe_lab(&b);
    assert!(
        probes_seen(&a) > 0,
        "probes arrive after the user's disconnect"
    );

    let out = b
        .cmd(bin.to_str().unwrap())
        .args(["logout", "orbnet"])
        .env("FERRY_SECRETS", "keyutils")
        .env("FERRY_KEYRING_SERVICE", &keyring_service)
        .env("FERRY_DATA_DIR", data.path().join("ferry"))
        .env("HOME", data.path())
        .env("FERRY_ORBNET_URL", &orbnet_url)
        .env_remove("FERRY_ORBNET_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(b.snapshot(), before, "links, routes, rules, DNS as before");
    drop(lab);
}

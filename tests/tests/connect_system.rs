//! `ferry connect --all` (system mode) against the lab, each in its own network namespace:
//! the lab (with its real WireGuard exit node, `--egress any`) and an HTTP server live in
//! namespace A; Ferry runs in namespace B, joined to A by a veth pair. The HTTP server listens
//! on an address that B has no route to, so the only way B reaches it is through Ferry's TUN
//! device and the exit node. Root only; skips with a reason otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use ferry_tests::lab::{ferry_bin, LabProcess};
use ferry_tests::netns::{skip_unless_root, veth, Netns, Proc};
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

#[test]
fn connect_all_carries_traffic_through_the_tun_and_leaves_nothing_behind() {
    if skip_unless_root("connect --all against the lab", &["mount", "keyctl"]) {
        return;
    }
    let a = Netns::new("csa");
    let b = Netns::new("csb");
    veth(&a, &b, &format!("{LAB_IP}/24"), "10.201.0.2/24");
    a.ip(&["address", "add", &format!("{HIDDEN_IP}/32"), "dev", "lo"]);

    let body = format!("through ferry0 and the exit node {}", rand::random::<u64>());
    let listener = a
        .run(|| TcpListener::bind(format!("{HIDDEN_IP}:0")).unwrap())
        .join()
        .unwrap();
    let target = listener.local_addr().unwrap();
    serve(listener, body.clone());

    let mut lab_cmd = a.cmd(ferry_bin().to_str().unwrap());
    lab_cmd.args(["lab", "--listen", &format!("{LAB_IP}:0"), "--egress", "any"]);
    let lab = LabProcess::start_command(lab_cmd).expect("lab starts in namespace A");

    // Without the tunnel, B cannot reach the server at all.
    let direct = b.run(move || http_get(target)).join().unwrap();
    assert!(direct.is_err(), "B reached {target} without the tunnel");

    // Ferry sends credentials over plain http only to loopback: B reaches the lab (in A) through
    // a forwarder on B's own 127.0.0.1.
    let lab_addr: std::net::SocketAddr = lab
        .urls
        .orbnet
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let local = b.forward_tcp(lab_addr);
    let orbnet_url = lab
        .urls
        .orbnet
        .replace(&lab_addr.to_string(), &local.to_string());
    let data = tempfile::tempdir().unwrap();
    // The veth's carrier comes up asynchronously: snapshot once it has.
    let deadline = std::time::Instant::now() + WAIT;
    while b.ip(&["-o", "link", "show"]).contains("NO-CARRIER") {
        assert!(
            std::time::Instant::now() < deadline,
            "veth carrier never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = b.snapshot();
    // `ferry login` then `ferry connect` in a private session keyring (`keyctl session -`),
    // sharing the token through the user's persistent kernel keyring under a keyring service
    // name of this test only (removed by `ferry logout` at the end), never Ferry's own entries.
    // A private /run (in the mount namespace `ip netns exec` already made) keeps the tunnel's
    // undo journal away from the host's /run/ferry.
    let keyring_service = format!("ferry-test-system-{}", std::process::id());
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
    .env_remove("FERRY_ORBNET_TOKEN")
    .env_remove("FERRY_TUNNELBYTE_TOKEN")
    .env_remove("FERRY_NEOSC_TOKEN");
    let mut ferry = Proc::spawn(cmd);
    let connected = event_line(&mut ferry, "connected", WAIT);
    assert!(connected["proxy"].is_null(), "system mode: {connected}");
    let session_id = connected["session_id"].as_str().unwrap().to_string();

    let (rx0, tx0) = link_bytes(&b, "ferry0");
    let got = b.run(move || http_get(target)).join().unwrap();
    let got = got.unwrap_or_else(|e| panic!("GET {target} through the tunnel: {e}"));
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with(&body), "{got}");
    let (rx1, tx1) = link_bytes(&b, "ferry0");
    eprintln!(
        "ferry0 moved {} bytes in, {} out for the GET",
        rx1 - rx0,
        tx1 - tx0
    );
    assert!(
        rx1 - rx0 >= body.len() as u64,
        "the answer came in through ferry0"
    );
    assert!(tx1 > tx0, "the request went out through ferry0");

    // A heartbeat proves the meter runs; then disconnect.
    event_line(&mut ferry, "heartbeat", WAIT);
    assert_eq!(
        ferry.signal_and_wait(libc::SIGINT, WAIT),
        Some(0),
        "clean exit on SIGINT; events {:?}",
        ferry.seen
    );
    let ended = event_line(&mut ferry, "session_ended", Duration::from_secs(2));
    assert_eq!(ended["reason"], "user_initiated", "{ended}");

    let hist = Command::new(ferry_bin())
        .args(["history", "--json"])
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_DATA_DIR", data.path().join("ferry"))
        .output()
        .unwrap();
    assert!(hist.status.success(), "{hist:?}");
    let hist: Value = serde_json::from_slice(&hist.stdout).unwrap();
    let row = hist["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["client_session_id"] == session_id.as_str())
        .unwrap_or_else(|| panic!("no row for {session_id} in {hist}"))
        .clone();
    assert_eq!(row["end_reason"], "user_initiated", "{row}");
    assert!(
        row["bytes_in"].as_u64().unwrap_or(0) >= body.len() as u64,
        "{row}"
    );

    // Another process in another session keyring finds the token, and forgets it.
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
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Signed out of orbnet"),
        "{out:?}"
    );

    assert_eq!(b.snapshot(), before, "links, routes, rules, DNS as before");
    drop(lab);
}

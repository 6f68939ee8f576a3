//! `ferry-helper` as a process (in its own network namespace, socket in a private directory):
//! the version handshake, malformed and fuzzed frames (the helper keeps serving), field
//! validation, one session at a time, idempotent disconnect, `DisconnectAll` reaching the
//! session's client, and who may connect: an ordinary user in the helper's group is served, one
//! outside it is refused (by the socket's mode, and by the SO_PEERCRED check when the mode is
//! opened up). Root only (it runs the helper and `setpriv`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use ferry_helper::client::{ClientError, Helper};
use ferry_helper::proto::{
    self, Event, Label, OpenRequest, Reader, Request, Response, SessionState,
};
use ferry_tests::netns::{ferry_bin, helper_bin, skip_unless_root, Netns, Proc};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
/// The helper's group: Debian's `nogroup` (gid 65534), so `nobody` is a member by its primary
/// group and a made-up gid is not; no system user or group is created.
const GROUP: &str = "nogroup";
const NOBODY: &str = "65534";
const OUTSIDER_GID: &str = "12345";

struct Running {
    ns: Netns,
    dir: tempfile::TempDir,
    socket: PathBuf,
    _helper: Proc,
}

fn start() -> Running {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> Running {
    let ns = Netns::new("hp");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("helper.sock");
    let mut cmd = ns.cmd(helper_bin().to_str().unwrap());
    cmd.arg("--socket")
        .arg(&socket)
        .args(["--group", GROUP, "--state-dir"])
        .arg(dir.path().join("run"))
        .arg("--journal-dir")
        .arg(dir.path().join("journal"))
        .args(extra);
    let helper = Proc::spawn(cmd);
    let deadline = Instant::now() + WAIT;
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the helper never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    Running {
        ns,
        dir,
        socket,
        _helper: helper,
    }
}

fn raw(r: &Running) -> UnixStream {
    let s = UnixStream::connect(&r.socket).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn hello(s: &UnixStream) {
    proto::write_msg(
        s,
        &Request::Hello {
            version: proto::VERSION,
        },
        &[],
    )
    .unwrap();
    let r: Response = Reader::new().read_msg(s).unwrap();
    assert_eq!(
        r,
        Response::Hello {
            version: proto::VERSION
        }
    );
}

fn open_req() -> OpenRequest {
    OpenRequest {
        ifname: "ferry7".into(),
        addresses: vec!["10.99.0.2/32".parse().unwrap()],
        mtu: 1420,
        allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
        dns: vec![],
        dns_search: vec![],
        endpoint: "198.18.0.2:51820".parse().unwrap(),
        listen_port: None,
        allow_lan: false,
        label: Label {
            service: "wireguard".into(),
            region: "test".into(),
        },
        api: vec![],
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn table_exists(ns: &Netns) -> bool {
    ns.cmd("nft")
        .args(["list", "table", "inet", "ferry"])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn version_mismatch_and_malformed_frames_are_refused_and_the_helper_keeps_serving() {
    if skip_unless_root("helper protocol", &["nft"]) {
        return;
    }
    let r = start();

    // A client of another protocol version is told so, by number.
    let s = raw(&r);
    proto::write_msg(&s, &Request::Hello { version: 99 }, &[]).unwrap();
    match Reader::new().read_msg::<Response>(&s).unwrap() {
        Response::Error { message } => {
            assert!(
                message.contains("99") && message.contains(&proto::VERSION.to_string()),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }

    // Anything before hello is refused.
    let s = raw(&r);
    proto::write_msg(&s, &Request::Status, &[]).unwrap();
    assert!(matches!(
        Reader::new().read_msg::<Response>(&s).unwrap(),
        Response::Error { .. }
    ));

    // A frame over the size cap: refused before it is read.
    let mut s = raw(&r);
    hello(&s);
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    assert!(matches!(
        Reader::new().read_msg::<Response>(&s).unwrap(),
        Response::Error { .. }
    ));

    // Fuzz: random bodies in valid frames, random raw bytes, truncated frames, mutated valid
    // requests; every connection gets an answer or is closed, and the helper stays up.
    let valid = serde_json::to_vec(&Request::Open(open_req())).unwrap();
    for round in 0..300u32 {
        let mut s = raw(&r);
        if round % 3 != 0 {
            hello(&s);
        }
        let body: Vec<u8> = match round % 4 {
            0 => (0..rand::random::<usize>() % 300)
                .map(|_| rand::random())
                .collect(),
            1 => {
                let mut v = valid.clone();
                let i = rand::random::<usize>() % v.len();
                v[i] = rand::random();
                v
            }
            2 => valid[..rand::random::<usize>() % valid.len()].to_vec(),
            _ => br#"{"request":"open","ifname":"x"}"#.to_vec(),
        };
        if round % 5 == 0 {
            // Raw garbage, no frame at all.
            let _ = s.write_all(&body);
        } else {
            let _ = s.write_all(&(body.len() as u32).to_be_bytes());
            let _ = s.write_all(&body);
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut reader = Reader::new();
        // Whatever comes back must be a well-formed response (or nothing: closed).
        while let Ok(resp) = reader.read_msg::<Response>(&s) {
            if matches!(resp, Response::Opened { .. }) {
                // Only a request that is valid as it stands may open a tunnel.
                match proto::decode::<Request>(&body) {
                    Ok(Request::Open(req)) => req.validate().unwrap(),
                    other => panic!("{other:?} opened a tunnel: {body:?}"),
                }
            }
        }
    }
    let status = rt().block_on(async {
        let h = Helper::connect(&r.socket).await.unwrap();
        // A mutation may have left a valid request (and its block): clear it.
        h.disconnect_all().await.unwrap();
        h.status().await.unwrap()
    });
    assert_eq!(status.state, SessionState::Disconnected, "{status:?}");
    assert!(!status.block);
    assert!(!table_exists(&r.ns), "no fuzzed frame set a block");
}

#[test]
fn one_session_at_a_time_idempotent_disconnect_and_disconnect_all_reaches_the_client() {
    if skip_unless_root("helper sessions", &["nft"]) {
        return;
    }
    let r = start();
    rt().block_on(async {
        let a = Helper::connect(&r.socket).await.unwrap();
        // Invalid fields are refused before anything happens.
        let mut bad = open_req();
        bad.ifname = "no spaces".into();
        let e = a.open(bad).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused(m) if m.contains("ifname")),
            "{e}"
        );
        assert!(!table_exists(&r.ns));

        let mut with_api = open_req();
        with_api.api = vec!["203.0.113.7:443".parse().unwrap()];
        let opened = a.open(with_api).await.unwrap();
        assert_eq!(opened.ifname, "ferry7");
        let table =
            r.ns.cmd("nft")
                .args(["list", "table", "inet", "ferry"])
                .output()
                .unwrap();
        let table = String::from_utf8_lossy(&table.stdout).into_owned();
        assert!(
            table.contains("ip daddr 203.0.113.7 tcp dport 443 accept"),
            "the API server passes the block: {table}"
        );
        assert!(opened.socket.local_addr().unwrap().port() > 0);
        assert!(table_exists(&r.ns), "the block is up with the tunnel");
        let st = a.status().await.unwrap();
        assert_eq!(st.state, SessionState::Connecting);
        assert_eq!(st.label.as_ref().unwrap().region, "test");

        // A second client cannot take over the session.
        let b = Helper::connect(&r.socket).await.unwrap();
        let e = b.open(open_req()).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused(m) if m.contains("another session")),
            "{e}"
        );
        let e = b.disconnect().await.unwrap_err();
        assert!(matches!(e, ClientError::Refused(_)), "{e}");

        a.handshake().await.unwrap();
        assert_eq!(a.status().await.unwrap().state, SessionState::Connected);
        a.close().await.unwrap();
        assert_eq!(a.status().await.unwrap().state, SessionState::Blocked);
        assert!(table_exists(&r.ns), "between tunnels the block stays");
        // Handshake without a tunnel is refused.
        assert!(a.handshake().await.is_err());

        // Disconnect is idempotent.
        a.disconnect().await.unwrap();
        a.disconnect().await.unwrap();
        assert!(!table_exists(&r.ns));

        // DisconnectAll from another client: the session's client hears it, the block goes.
        drop(opened);
        let opened = a.open(open_req()).await.unwrap();
        // The helper waits for the session's client to end it as the user's disconnect.
        let (all, ev) = tokio::join!(b.disconnect_all(), async {
            let ev = tokio::time::timeout(WAIT, a.event()).await.unwrap();
            assert!(table_exists(&r.ns), "the client ends the session itself");
            a.disconnect().await.unwrap();
            ev
        });
        all.unwrap();
        assert_eq!(ev, Event::DisconnectRequested);
        assert!(!table_exists(&r.ns));
        assert_eq!(b.status().await.unwrap().state, SessionState::Disconnected);
        a.disconnect().await.unwrap();
        drop(opened);
    });
    assert!(!r.dir.path().join("journal/helper-state.json").exists());
}

fn ferry_status_as(r: &Running, gid: &str) -> (i32, String) {
    ferry_status_with(r, &["--regid", gid, "--clear-groups"])
}

fn ferry_status_with(r: &Running, ids: &[&str]) -> (i32, String) {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", NOBODY])
        .args(ids)
        .args([ferry_bin().to_str().unwrap(), "status"])
        .env("FERRY_HELPER_SOCKET", &r.socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn members_of_the_group_are_served_and_others_refused() {
    if skip_unless_root("helper peer check", &["nft", "setpriv"]) {
        return;
    }
    if std::process::Command::new("getent")
        .args(["group", GROUP])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipping: no group {GROUP}");
        return;
    }
    let r = start();
    let mode = std::fs::metadata(&r.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "socket mode");

    // An ordinary user in the group.
    let (code, out) = ferry_status_as(&r, NOBODY);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("state: disconnected"), "{out}");

    // A member by a supplementary group (SO_PEERGROUPS).
    let (code, out) = ferry_status_with(&r, &["--regid", OUTSIDER_GID, "--groups", NOBODY]);
    assert_eq!(code, 0, "{out}");

    // Outside the group: the socket's mode keeps it out, and the message names the group.
    let (code, out) = ferry_status_as(&r, OUTSIDER_GID);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("group `ferry`") || out.contains(GROUP),
        "{out}"
    );

    // Even with the mode opened up, SO_PEERCRED refuses it.
    std::fs::set_permissions(&r.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, out) = ferry_status_as(&r, OUTSIDER_GID);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("not in group \"nogroup\""),
        "the refusal names the group: {out}"
    );
}

#[test]
fn without_a_helper_the_client_says_how_to_get_one() {
    if skip_unless_root("helper missing", &["setpriv"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-helper.sock");
    let out = std::process::Command::new(ferry_bin())
        .arg("status")
        .env("FERRY_HELPER_SOCKET", &missing)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    for hint in [
        "sudo apt install ./ferry_",
        "systemctl enable --now ferry-helper",
        "group `ferry`",
        "app mode",
    ] {
        assert!(text.contains(hint), "{hint:?} missing from: {text}");
    }
    // `ferry up --all` as an ordinary user (no CAP_NET_ADMIN) with no helper: the same advice.
    let (_, public) = ferry_tests::netns::wg_keypair();
    let conf = dir.path().join("wg.conf");
    std::fs::write(
        &conf,
        format!("[Interface]\nPrivateKey = {public}\nAddress = 10.99.0.2/32\n[Peer]\nPublicKey = {public}\nEndpoint = 198.18.0.2:51820\nAllowedIPs = 0.0.0.0/0\n"),
    )
    .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&conf, Some(65534), Some(65534)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(ferry_bin())
        .args(["up", "--all"])
        .arg(&conf)
        .env("FERRY_HELPER_SOCKET", &missing)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("systemctl enable --now ferry-helper") && text.contains("app mode"),
        "{text}"
    );
}

#[test]
fn always_require_vpn_blocks_while_disconnected() {
    if skip_unless_root("helper always-require-vpn", &["nft"]) {
        return;
    }
    let r = start_with(&["--always-require-vpn"]);
    assert!(table_exists(&r.ns), "blocked from the start");
    rt().block_on(async {
        let h = Helper::connect(&r.socket).await.unwrap();
        let st = h.status().await.unwrap();
        assert_eq!(st.state, SessionState::Disconnected);
        assert!(st.block, "{st:?}");
        let opened = h.open(open_req()).await.unwrap();
        h.disconnect().await.unwrap();
        assert!(
            table_exists(&r.ns),
            "still blocked after the user's disconnect"
        );
        h.disconnect_all().await.unwrap();
        assert!(table_exists(&r.ns), "and after disconnect_all");
        drop(opened);
    });
}

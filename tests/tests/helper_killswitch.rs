//! The helper's kill switch, counted in packets. Three parts, each real:
//! - namespace `c`: the client (`ferry up --all` through `ferry-helper`, both running there);
//! - namespace `i`: the "internet", reached over a veth pair (198.18.0.0/24, fd18::/64); it runs
//!   the exit (wireguard-go at 198.18.0.2:51820, tunnel address 10.99.0.1), two "internet"
//!   addresses (203.0.113.1, 2001:db8::1: `c`'s default routes lead there) and nftables
//!   counters of every probe from the client's own addresses (TCP, UDP, ICMP echo and DNS, IPv4
//!   and IPv6), plus one counter of what arrives through the tunnel (source 10.99.0.2).
//!
//! Probes count zero while connecting to an endpoint that never answers, after `kill -9` of the
//! helper, after that attempt failed, while connected (nothing outside the tunnel; IPv6 blocked
//! since the tunnel carries none), and after `kill -9` of the client. They arrive before
//! connecting and after each user disconnect (`ferry disconnect`, SIGINT). Root only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use ferry_tests::netns::{
    ferry_bin, helper_bin, skip_unless_root, veth, wg_keypair, Netns, Proc, WgGo,
};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const C4: &str = "198.18.0.1";
const I4: &str = "198.18.0.2";
const C6: &str = "fd18::1";
const I6: &str = "fd18::2";
/// "Internet" addresses on namespace `i`'s loopback, reached from `c` by its default routes.
const T4: &str = "203.0.113.1";
const T6: &str = "2001:db8::1";
const WAIT: Duration = Duration::from_secs(15);
const PROBES: [&str; 8] = [
    "tcp4", "udp4", "dns4", "icmp4", "tcp6", "udp6", "dns6", "icmp6",
];

/// An nftables table counting each kind of probe (see [`PROBES`]) that arrives from `src4` and
/// `src6`, plus the rules in `extra`.
fn counter_script(src4: &str, src6: &str, extra: &str) -> String {
    let mut script = String::from("table inet probe {\n");
    for p in PROBES.iter().chain(["tunnel"].iter()) {
        script.push_str(&format!("  counter {p} {{}}\n"));
    }
    script.push_str(&format!(
        "  chain pre {{\n    type filter hook prerouting priority -300; policy accept;\n\
         ip saddr {src4} tcp dport 9 counter name tcp4\n\
         ip saddr {src4} udp dport 9 counter name udp4\n\
         ip saddr {src4} udp dport 53 counter name dns4\n\
         ip saddr {src4} icmp type echo-request counter name icmp4\n\
         ip6 saddr {src6} tcp dport 9 counter name tcp6\n\
         ip6 saddr {src6} udp dport 9 counter name udp6\n\
         ip6 saddr {src6} udp dport 53 counter name dns6\n\
         ip6 saddr {src6} icmpv6 type echo-request counter name icmp6\n\
         {extra}  }}\n}}\n"
    ));
    script
}

/// The counters in namespace `i`.
fn install_counters(i: &Netns) {
    i.nft(&counter_script(
        C4,
        C6,
        "ip saddr 10.99.0.2 counter name tunnel\n",
    ));
}

fn counters(i: &Netns) -> BTreeMap<String, u64> {
    let out = i
        .cmd("nft")
        .args(["-j", "list", "counters", "table", "inet", "probe"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let c = e.get("counter")?;
            Some((c["name"].as_str()?.to_string(), c["packets"].as_u64()?))
        })
        .collect()
}

fn reset(i: &Netns) {
    let out = i
        .cmd("nft")
        .args(["reset", "counters", "table", "inet", "probe"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// Fires one probe of each kind from namespace `c` (as root) at the "internet".
fn probe(c: &Netns) {
    probe_hosts(c, T4, T6);
}

/// Fires one probe of each kind from namespace `c` (as root) at `to4` and `to6`.
fn probe_hosts(c: &Netns, to4: &'static str, to6: &'static str) {
    let pings: Vec<_> = [("-4", to4), ("-6", to6)]
        .iter()
        .map(|(fam, to)| {
            c.cmd("ping")
                .args([*fam, "-c", "1", "-W", "1", "-n", "-q", to])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    c.run(move || {
        for ip in [to4, to6] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let _ = TcpStream::connect_timeout(&SocketAddr::new(ip, 9), Duration::from_millis(300));
            let bind: SocketAddr = if ip.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            if let Ok(u) = UdpSocket::bind(bind) {
                let _ = u.send_to(b"probe", SocketAddr::new(ip, 9));
                // A DNS query for example.com, A.
                let q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
                let _ = u.send_to(q, SocketAddr::new(ip, 53));
            }
        }
    })
    .join()
    .unwrap();
    for mut p in pings {
        let _ = p.wait();
    }
}

/// Runs `probe` against zeroed counters in `at`, then what arrived there (after a short grace
/// for packets in flight: what must not arrive cannot be awaited).
fn counts_after(at: &Netns, probe: impl FnOnce()) -> BTreeMap<String, u64> {
    reset(at);
    probe();
    std::thread::sleep(Duration::from_millis(200));
    counters(at)
}

/// Probes from `c`, then the counts of what arrived at the "internet" `i`.
fn probe_counts(c: &Netns, i: &Netns) -> BTreeMap<String, u64> {
    counts_after(i, || probe(c))
}

fn assert_none_leaked(c: &Netns, i: &Netns, when: &str) -> BTreeMap<String, u64> {
    let got = probe_counts(c, i);
    let leaked: Vec<_> = PROBES.iter().filter(|p| got[**p] > 0).collect();
    assert!(leaked.is_empty(), "{when}: leaked {leaked:?}: {got:?}");
    eprintln!("{when}: nothing leaked {got:?}");
    got
}

fn assert_all_arrive(c: &Netns, i: &Netns, when: &str) {
    // Neighbour discovery may still be settling: retry a few rounds.
    let deadline = Instant::now() + WAIT;
    loop {
        let got = probe_counts(c, i);
        let missing: Vec<_> = PROBES.iter().filter(|p| got[**p] == 0).collect();
        if missing.is_empty() {
            eprintln!("{when}: every probe arrived {got:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: probes {missing:?} never arrived: {got:?}"
        );
    }
}

struct Client {
    c: Netns,
    i: Netns,
    _wg: WgGo,
    dir: tempfile::TempDir,
    socket: PathBuf,
    good: PathBuf,
    dead: PathBuf,
}

impl Client {
    fn helper(&self) -> Proc {
        self.helper_for("root")
    }

    fn helper_for(&self, group: &str) -> Proc {
        let mut cmd = self.c.cmd(helper_bin().to_str().unwrap());
        cmd.arg("--socket")
            .arg(&self.socket)
            .args(["--group", group, "--state-dir"])
            .arg(self.dir.path().join("run"))
            .arg("--journal-dir")
            .arg(self.dir.path().join("journal"))
            .env("FERRY_HELPER_LOG", "info");
        let p = Proc::spawn(cmd);
        let deadline = Instant::now() + WAIT;
        while self.ferry(&["status"]).0 != 0 {
            assert!(Instant::now() < deadline, "the helper never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn ferry(&self, args: &[&str]) -> (i32, String) {
        let out = self
            .c
            .cmd(ferry_bin().to_str().unwrap())
            .args(args)
            .env("FERRY_HELPER_SOCKET", &self.socket)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    fn status(&self) -> serde_json::Value {
        let (code, out) = self.ferry(&["status", "--json"]);
        assert_eq!(code, 0, "{out}");
        serde_json::from_str(out.lines().next().unwrap()).unwrap()
    }

    fn up(&self, conf: &Path) -> Proc {
        self.up_with(conf, &[])
    }

    /// `ferry up --all` with `extra` arguments.
    fn up_with(&self, conf: &Path, extra: &[&str]) -> Proc {
        let mut cmd = self.c.cmd(ferry_bin().to_str().unwrap());
        cmd.args(["up", "--all", "--stats-interval", "0"])
            .args(extra)
            .arg(conf)
            .env("FERRY_HELPER_SOCKET", &self.socket);
        Proc::spawn(cmd)
    }
}

fn setup() -> Client {
    let c = Netns::new("ksc");
    let i = Netns::new("ksi");
    veth(&c, &i, &format!("{C4}/24"), &format!("{I4}/24"));
    for (ns, addr) in [(&c, C6), (&i, I6)] {
        let link = ns.ip(&["-o", "link", "show", "type", "veth"]);
        let dev = link
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .split('@')
            .next()
            .unwrap()
            .to_string();
        ns.ip(&[
            "address",
            "add",
            &format!("{addr}/64"),
            "dev",
            &dev,
            "nodad",
        ]);
    }
    i.ip(&["address", "add", &format!("{T4}/32"), "dev", "lo"]);
    i.ip(&["address", "add", &format!("{T6}/128"), "dev", "lo"]);
    c.ip(&["route", "add", "default", "via", I4]);
    c.ip(&["-6", "route", "add", "default", "via", I6]);
    install_counters(&i);
    let (server_key, server_pub) = wg_keypair();
    let (client_key, client_pub) = wg_keypair();
    let wg = WgGo::start(
        &i,
        &format!("[Interface]\nPrivateKey = {server_key}\nListenPort = 51820\n[Peer]\nPublicKey = {client_pub}\nAllowedIPs = 10.99.0.2/32\n"),
        "10.99.0.1/24",
        1420,
    );
    let dir = tempfile::tempdir().unwrap();
    let conf = |name: &str, port: u16| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("[Interface]\nPrivateKey = {client_key}\nAddress = 10.99.0.2/32\nDNS = 10.99.0.53\n\n[Peer]\nPublicKey = {server_pub}\nEndpoint = {I4}:{port}\nAllowedIPs = 0.0.0.0/0\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p
    };
    let good = conf("good.conf", 51820);
    let dead = conf("dead.conf", 51999);
    let socket = dir.path().join("helper.sock");
    Client {
        c,
        i,
        _wg: wg,
        socket,
        good,
        dead,
        dir,
    }
}

#[test]
fn no_probe_leaves_outside_the_tunnel_until_the_user_disconnects() {
    if skip_unless_root("helper kill switch", &["nft", "wireguard-go", "wg", "ping"]) {
        return;
    }
    let s = setup();
    let mut helper = s.helper();

    // Positive control: with nothing running, every probe arrives.
    assert_all_arrive(&s.c, &s.i, "before connecting");

    // Connecting to an endpoint that never answers.
    let mut client = s.up(&s.dead);
    client
        .wait_line("up: system mode through ferry-helper", WAIT)
        .unwrap();
    assert_eq!(s.status()["state"], "connecting");
    assert_eq!(s.status()["block"], true);
    assert_none_leaked(&s.c, &s.i, "connecting to a dead endpoint");
    let resolv_before = "nameserver 192.0.2.53\n";
    assert!(
        s.c.resolv_conf().contains("nameserver 10.99.0.53"),
        "the helper set the tunnel's DNS: {}",
        s.c.resolv_conf()
    );

    // The helper dies hard: the table stays in the kernel.
    assert_eq!(helper.signal_and_wait(libc::SIGKILL, WAIT), Some(-1));
    assert_none_leaked(&s.c, &s.i, "after kill -9 of the helper");
    // The client notices and gives up: the attempt failed, the block stays.
    assert_eq!(client.wait(WAIT), Some(1), "{:?}", client.seen);
    assert_none_leaked(&s.c, &s.i, "after the attempt failed");

    // A restarted helper puts the block back from its journal.
    let mut helper = s.helper();
    let st = s.status();
    assert_eq!(st["state"], "blocked", "{st}");
    assert_eq!(st["block"], true, "{st}");
    assert_eq!(
        s.c.resolv_conf(),
        resolv_before,
        "the restarted helper restored DNS from its journal"
    );
    assert_none_leaked(&s.c, &s.i, "after the helper restarted");

    // `ferry disconnect` with no client attached clears the leftover block.
    let (code, out) = s.ferry(&["disconnect"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.status()["block"], false);
    assert_all_arrive(&s.c, &s.i, "after ferry disconnect");

    // Connected: nothing outside the tunnel; IPv4 probes go through it, IPv6 is blocked.
    let mut client = s.up(&s.good);
    client.wait_line("handshake: completed", WAIT).unwrap();
    let st = s.status();
    assert_eq!(st["state"], "connected", "{st}");
    assert_eq!(st["policy"]["policy"], "tunnel_only", "{st}");
    let got = assert_none_leaked(&s.c, &s.i, "connected");
    assert!(got["tunnel"] > 0, "probes went through the tunnel: {got:?}");

    // The client dies hard: blocked, and the TUN device is gone with it.
    assert_eq!(client.signal_and_wait(libc::SIGKILL, WAIT), Some(-1));
    let deadline = Instant::now() + WAIT;
    while s.status()["client_attached"] == true {
        assert!(
            Instant::now() < deadline,
            "the helper never saw the client go"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.status()["state"], "blocked");
    assert_eq!(
        s.c.resolv_conf(),
        resolv_before,
        "DNS restored after the client died"
    );
    assert!(
        !s.c.ip(&["-o", "link", "show"]).contains("ferry0"),
        "the TUN device went with the client"
    );
    assert_none_leaked(&s.c, &s.i, "after kill -9 of the client");

    // A new session picks up; `ferry disconnect` from another process ends it cleanly.
    let mut client = s.up(&s.good);
    client.wait_line("handshake: completed", WAIT).unwrap();
    assert_none_leaked(&s.c, &s.i, "connected again");
    let (code, out) = s.ferry(&["disconnect"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(client.wait(WAIT), Some(0), "{:?}", client.seen);
    assert_all_arrive(&s.c, &s.i, "after ferry disconnect of a running session");

    // SIGINT of `ferry up` is the user's disconnect.
    let mut client = s.up(&s.good);
    client.wait_line("handshake: completed", WAIT).unwrap();
    assert_none_leaked(&s.c, &s.i, "connected a third time");
    assert_eq!(client.signal_and_wait(libc::SIGINT, WAIT), Some(0));
    assert_eq!(s.status()["block"], false);
    assert_all_arrive(&s.c, &s.i, "after SIGINT");
    let st = s.status();
    assert_eq!(st["state"], "disconnected", "{st}");
    assert!(
        !s.dir.path().join("journal/helper-state.json").exists(),
        "a user disconnect removes the journal"
    );
    let _ = helper.signal_and_wait(libc::SIGTERM, WAIT);
}

/// Probes from namespace `c` as an ordinary user (uid/gid 65534): TCP, UDP and DNS over IPv4
/// and IPv6 (Python sockets), and ICMP (`ping`, which has cap_net_raw).
fn probe_as_nobody(c: &Netns) {
    let script = format!(
        "import socket\n\
         for fam, ip in ((socket.AF_INET, '{T4}'), (socket.AF_INET6, '{T6}')):\n\
         \x20   t = socket.socket(fam, socket.SOCK_STREAM); t.settimeout(0.3)\n\
         \x20   try: t.connect((ip, 9))\n\
         \x20   except OSError: pass\n\
         \x20   u = socket.socket(fam, socket.SOCK_DGRAM)\n\
         \x20   for port in (9, 53):\n\
         \x20       try: u.sendto(b'probe', (ip, port))\n\
         \x20       except OSError: pass\n"
    );
    // The system's interpreter: one under /root (pyenv) is out of nobody's reach.
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let st = c
        .cmd("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            python,
            "-c",
            &script,
        ])
        .status()
        .unwrap();
    assert!(st.success(), "python probes as nobody");
    for (fam, to) in [("-4", T4), ("-6", T6)] {
        let _ = c
            .cmd("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "ping",
            ])
            .args([fam, "-c", "1", "-W", "1", "-n", "-q", to])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn nobody_counts(c: &Netns, i: &Netns) -> BTreeMap<String, u64> {
    counts_after(i, || probe_as_nobody(c))
}

#[test]
fn an_ordinary_user_connects_through_the_helper_and_its_probes_do_not_leak() {
    if skip_unless_root(
        "helper kill switch, ordinary user",
        &["nft", "wireguard-go", "wg", "ping", "python3", "setpriv"],
    ) {
        return;
    }
    let s = setup();
    // `nobody` is in `nogroup` (its primary group): the helper serves it.
    let mut helper = s.helper_for("nogroup");
    std::fs::set_permissions(
        s.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::chown(&s.good, Some(65534), Some(65534)).unwrap();

    let got = nobody_counts(&s.c, &s.i);
    assert!(
        PROBES.iter().all(|p| got[*p] > 0),
        "before connecting, an ordinary user's probes arrive: {got:?}"
    );

    // `ferry up --all` as nobody: no CAP_NET_ADMIN, so it goes through the helper.
    let mut cmd = s.c.cmd("setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(ferry_bin())
        .args(["up", "--all", "--stats-interval", "0"])
        .arg(&s.good)
        .env("FERRY_HELPER_SOCKET", &s.socket);
    let mut client = Proc::spawn(cmd);
    client.wait_line("handshake: completed", WAIT).unwrap();
    assert_eq!(s.status()["state"], "connected");

    let got = nobody_counts(&s.c, &s.i);
    let leaked: Vec<_> = PROBES.iter().filter(|p| got[**p] > 0).collect();
    assert!(
        leaked.is_empty(),
        "an ordinary user's probes leaked {leaked:?}: {got:?}"
    );
    assert!(
        got["tunnel"] > 0,
        "its IPv4 probes went through the tunnel: {got:?}"
    );
    assert_none_leaked(&s.c, &s.i, "connected as nobody (root's probes)");

    // The ordinary user's SIGINT is a user disconnect: the block goes.
    assert_eq!(client.signal_and_wait(libc::SIGINT, WAIT), Some(0));
    let got = nobody_counts(&s.c, &s.i);
    assert!(
        PROBES.iter().all(|p| got[*p] > 0),
        "after the user's disconnect, probes arrive: {got:?}"
    );
    let _ = helper.signal_and_wait(libc::SIGTERM, WAIT);
}

/// The client's and the LAN host's addresses on a second link (RFC 1918 and ULA).
const L_C4: &str = "192.168.77.1";
const L_H4: &str = "192.168.77.2";
const L_C6: &str = "fd77::1";
const L_H6: &str = "fd77::2";

/// A LAN host in namespace `l`, on a second veth from `c`, counting what arrives from `c`.
fn lan_host(c: &Netns) -> Netns {
    let l = Netns::new("ksl");
    veth(c, &l, &format!("{L_C4}/24"), &format!("{L_H4}/24"));
    for (ns, addr) in [(c, L_C6), (&l, L_H6)] {
        let dev = ns
            .ip(&["-o", "-4", "address", "show"])
            .lines()
            .find(|line| line.contains("192.168.77."))
            .and_then(|line| line.split_whitespace().nth(1).map(str::to_string))
            .unwrap();
        ns.ip(&[
            "address",
            "add",
            &format!("{addr}/64"),
            "dev",
            &dev,
            "nodad",
        ]);
    }
    l.nft(&counter_script(L_C4, L_C6, ""));
    l
}

/// Probes the LAN host from `c`, then what arrived.
fn lan_counts(c: &Netns, l: &Netns) -> BTreeMap<String, u64> {
    counts_after(l, || probe_hosts(c, L_H4, L_H6))
}

#[test]
fn allow_lan_lets_the_local_network_but_not_its_dns_through_the_block() {
    if skip_unless_root(
        "helper kill switch, LAN",
        &["nft", "wireguard-go", "wg", "ping"],
    ) {
        return;
    }
    let s = setup();
    let l = lan_host(&s.c);
    let mut helper = s.helper();
    // Positive control: with nothing running the LAN host sees every probe (neighbour
    // discovery may take a round or two).
    let deadline = Instant::now() + WAIT;
    loop {
        let got = lan_counts(&s.c, &l);
        if PROBES.iter().all(|p| got[*p] > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "LAN probes never arrived: {got:?}"
        );
    }

    // Blocked (connecting to a dead endpoint) without --allow-lan: the LAN gets nothing.
    let mut client = s.up(&s.dead);
    client
        .wait_line("up: system mode through ferry-helper", WAIT)
        .unwrap();
    let got = lan_counts(&s.c, &l);
    assert!(
        PROBES.iter().all(|p| got[*p] == 0),
        "the LAN got through a block without --allow-lan: {got:?}"
    );
    assert_eq!(client.signal_and_wait(libc::SIGINT, WAIT), Some(0));

    // With --allow-lan the same block lets the LAN through, but not DNS to it, and still
    // nothing to the internet.
    let mut client = s.up_with(&s.dead, &["--allow-lan"]);
    client
        .wait_line("up: system mode through ferry-helper", WAIT)
        .unwrap();
    assert_eq!(s.status()["block"], true);
    let got = lan_counts(&s.c, &l);
    for p in ["tcp4", "udp4", "icmp4", "tcp6", "udp6", "icmp6"] {
        assert!(
            got[p] > 0,
            "{p} to the LAN was blocked with --allow-lan: {got:?}"
        );
    }
    assert_eq!(
        (got["dns4"], got["dns6"]),
        (0, 0),
        "DNS to a LAN resolver passed the block: {got:?}"
    );
    assert_none_leaked(&s.c, &s.i, "blocked with --allow-lan");
    assert_eq!(client.signal_and_wait(libc::SIGINT, WAIT), Some(0));
    assert_eq!(s.status()["block"], false);
    let _ = helper.signal_and_wait(libc::SIGTERM, WAIT);
}

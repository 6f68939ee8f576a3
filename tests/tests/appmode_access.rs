//! Who may use the app-mode proxies, with real clients of real UIDs: in a network namespace of
//! its own, the test (root) runs the exit node, an origin server that records what reaches it,
//! and the proxies; `curl` runs as root or as `nobody` (`setpriv`). Without credentials only the
//! owner's sockets are served; anyone else is refused (SOCKS5 reply 2, HTTP 403) and the origin
//! sees nothing. With credentials every client must present them (RFC 1929, HTTP Basic), and a
//! proxy on a non-loopback address does not start without.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod exit_support;

use std::future::Future;

use exit_support::*;
use ferry_tests::netns::{skip_unless_root, Netns};
use ferry_tunnel::proxy::{Access, Credentials, ProxyError};

const NOBODY: u32 = 65534;

fn curl_available() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `f(namespace name)` on a tokio runtime whose threads live in a fresh namespace.
fn in_netns<F, Fut>(tag: &str, f: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let ns = Netns::new(tag);
    let name = ns.name.clone();
    let result = ns
        .run(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f(name));
        })
        .join();
    drop(ns);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// What a client run returned.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `curl ARGS` in namespace `ns` (this one when empty), as `uid` (this process's when
/// `None`), with no proxy variables.
async fn curl_as(ns: &str, uid: Option<u32>, args: &[String]) -> Run {
    let mut cmd = tokio::process::Command::new("env");
    if !ns.is_empty() {
        cmd.args(["ip", "netns", "exec", ns]);
    }
    if let Some(uid) = uid {
        let id = uid.to_string();
        cmd.args(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]);
    }
    cmd.args(["curl", "--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/");
    let out = cmd.output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Through SOCKS5 (names resolved by the proxy), HTTP CONNECT and plain HTTP, to `origin`.
async fn both_proxies(ns: &str, uid: Option<u32>, app: &AppMode, origin: &Origin) -> [Run; 3] {
    both_with(ns, uid, app, origin, None).await
}

fn assert_served(runs: &[Run; 3], who: &str) {
    for (run, proxy) in runs[..2].iter().zip(["SOCKS5", "HTTP CONNECT"]) {
        assert_eq!(run.code, 0, "{who} via {proxy}: {run:?}");
        assert_eq!(run.stdout, "hello /through", "{who} via {proxy}: {run:?}");
    }
    let plain = &runs[2];
    assert_eq!(plain.code, 0, "{who} via plain HTTP: {plain:?}");
    assert_eq!(
        plain.stdout, "hello /through 200",
        "{who} via plain HTTP: {plain:?}"
    );
}

fn assert_refused(runs: &[Run; 3], who: &str) {
    let [socks, http, plain] = runs;
    assert!(
        plain.stdout.ends_with(" 403"),
        "{who} via plain HTTP: {plain:?}"
    );
    // curl: 97 = CURLE_PROXY (the SOCKS5 reply was not "succeeded").
    assert_eq!(socks.code, 97, "{who} via SOCKS5: {socks:?}");
    assert!(
        socks.stderr.contains("(2)") || socks.stderr.to_lowercase().contains("not allowed"),
        "{who} via SOCKS5: {socks:?}"
    );
    // curl: 56 = the CONNECT answer was not 2xx.
    assert_eq!(http.code, 56, "{who} via HTTP CONNECT: {http:?}");
    assert!(
        http.stderr.contains("403"),
        "{who} via HTTP CONNECT: {http:?}"
    );
}

/// Ferry runs as root here, so root is the owner: root's curl gets through both proxies, and
/// `nobody`'s is refused by both, with nothing reaching the origin.
#[test]
fn the_owner_gets_through_both_proxies_and_another_uid_is_refused() {
    if skip_unless_root(
        "the_owner_gets_through_both_proxies_and_another_uid_is_refused",
        &["curl", "setpriv"],
    ) {
        return;
    }
    in_netns("owner", |ns| async move {
        let exit = loopback_exit().await;
        let app = app_mode(&exit).await;
        let origin = origin_server().await;

        let refused = both_proxies(&ns, Some(NOBODY), &app, &origin).await;
        assert_refused(&refused, "nobody");
        assert_eq!(origin.connection_count(), 0, "{:?}", origin.seen());

        let served = both_proxies(&ns, None, &app, &origin).await;
        assert_served(&served, "root (the owner)");
        assert_eq!(origin.connection_count(), 3);
    });
}

/// A proxy whose owner is `nobody` (as when Ferry runs as nobody): root is refused like any
/// other UID, and nobody gets through.
#[test]
fn root_is_refused_by_a_proxy_it_does_not_own() {
    if skip_unless_root(
        "root_is_refused_by_a_proxy_it_does_not_own",
        &["curl", "setpriv"],
    ) {
        return;
    }
    in_netns("notroot", |ns| async move {
        let exit = loopback_exit().await;
        let app = app_mode_with(&exit, Access::Owner(NOBODY), "127.0.0.1:0", true).await;
        let origin = origin_server().await;

        let refused = both_proxies(&ns, None, &app, &origin).await;
        assert_refused(&refused, "root");
        assert_eq!(origin.connection_count(), 0, "{:?}", origin.seen());

        let served = both_proxies(&ns, Some(NOBODY), &app, &origin).await;
        assert_served(&served, "nobody (the owner)");
        assert_eq!(origin.connection_count(), 3);
    });
}

/// Through SOCKS5, HTTP CONNECT and plain HTTP with `user:password` (or none) in the proxy
/// URLs (plain HTTP: the body, a space and the status code).
async fn both_with(
    ns: &str,
    uid: Option<u32>,
    app: &AppMode,
    origin: &Origin,
    userinfo: Option<&str>,
) -> [Run; 3] {
    let url = format!("http://localhost:{}/through", origin.addr.port());
    let at = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let socks = curl_as(
        ns,
        uid,
        &[
            "--proxy".into(),
            format!("socks5h://{at}{}", app.proxy.socks_addr()),
            url.clone(),
        ],
    )
    .await;
    let http = curl_as(
        ns,
        uid,
        &[
            "--proxytunnel".into(),
            "--proxy".into(),
            format!("http://{at}{}", app.proxy.http_addr().unwrap()),
            url.clone(),
        ],
    )
    .await;
    let plain = curl_as(
        ns,
        uid,
        &[
            "--proxy".into(),
            format!("http://{at}{}", app.proxy.http_addr().unwrap()),
            "--write-out".into(),
            " %{http_code}".into(),
            url,
        ],
    )
    .await;
    [socks, http, plain]
}

fn assert_unauthenticated(runs: &[Run; 3], who: &str) {
    let [socks, http, plain] = runs;
    assert!(
        plain.stdout.ends_with(" 407"),
        "{who} via plain HTTP: {plain:?}"
    );
    assert_eq!(socks.code, 97, "{who} via SOCKS5: {socks:?}");
    assert_eq!(http.code, 56, "{who} via HTTP CONNECT: {http:?}");
    assert!(
        http.stderr.contains("407"),
        "{who} via HTTP CONNECT: {http:?}"
    );
}

fn alice() -> Access {
    Access::Credentials(Credentials::new("alice", "pa:ss w0rd").unwrap())
}

/// With credentials (here on loopback), the right ones pass both proxies; a wrong password, a
/// wrong user and none at all are refused (SOCKS5: the RFC 1929 status or no acceptable
/// method; HTTP: 407), and the origin sees only the authenticated requests.
#[tokio::test(flavor = "multi_thread")]
async fn with_credentials_only_the_right_ones_pass_both_proxies() {
    if !curl_available() {
        eprintln!("skipping: curl is not installed");
        return;
    }
    let exit = loopback_exit().await;
    let app = app_mode_with(&exit, alice(), "127.0.0.1:0", true).await;
    let origin = origin_server().await;
    for (userinfo, who) in [
        (Some("alice:pa%3Ass%20w0rd!"), "a wrong password"),
        (Some("bob:pa%3Ass%20w0rd"), "a wrong user"),
        (None, "no credentials"),
    ] {
        let runs = both_with("", None, &app, &origin, userinfo).await;
        assert_unauthenticated(&runs, who);
    }
    assert_eq!(origin.connection_count(), 0, "{:?}", origin.seen());
    let runs = both_with("", None, &app, &origin, Some("alice:pa%3Ass%20w0rd")).await;
    assert_served(&runs, "alice");
    assert_eq!(origin.connection_count(), 3);
    // Credentials are for the proxy: the origin never sees them.
    assert!(origin
        .seen()
        .iter()
        .all(|r| r.header("proxy-authorization").is_none()));
}

/// A proxy on a non-loopback address without credentials does not start (nothing is bound).
#[tokio::test]
async fn a_non_loopback_proxy_without_credentials_does_not_start() {
    for (socks, http) in [("0.0.0.0:0", None), ("127.0.0.1:0", Some("[::]:0"))] {
        let (stack_end, _peer_end) = ferry_tunnel::pipe::pipe(16);
        let result = ferry_tunnel::proxy::AppProxy::start_with(
            stack_end,
            ferry_tunnel::proxy::ProxyOptions {
                tunnel_addrs: vec!["10.64.0.2/32".parse().unwrap()],
                dns: vec![],
                socks_listen: socks.parse().unwrap(),
                http_listen: http.map(|h| h.parse().unwrap()),
                mtu: 1420,
                access: Access::default(),
            },
        )
        .await;
        match result {
            Err(ProxyError::NeedsCredentials { addr }) => {
                assert_eq!(addr.to_string(), http.unwrap_or(socks));
            }
            other => panic!("{socks} {http:?}: {other:?}"),
        }
    }
}

/// In a namespace, a proxy on a non-loopback address (192.0.2.1 on a veth link there) with
/// credentials: any UID that has them gets through (no UID rule for authenticated proxies),
/// and without them nobody does.
#[test]
fn a_non_loopback_proxy_with_credentials_serves_whoever_has_them() {
    if skip_unless_root(
        "a_non_loopback_proxy_with_credentials_serves_whoever_has_them",
        &["curl", "setpriv"],
    ) {
        return;
    }
    in_netns("auth", |ns| async move {
        for args in [
            &["link", "add", "fa0", "type", "veth", "peer", "name", "fb0"][..],
            &["address", "add", "192.0.2.1/24", "dev", "fa0"],
            &["link", "set", "fa0", "up"],
            &["link", "set", "fb0", "up"],
        ] {
            let mut a = vec!["-n", ns.as_str()];
            a.extend_from_slice(args);
            ferry_tests::netns::sh("ip", &a).unwrap();
        }
        let exit = loopback_exit().await;
        let app = app_mode_with(&exit, alice(), "192.0.2.1:0", true).await;
        assert_eq!(app.proxy.socks_addr().ip().to_string(), "192.0.2.1");
        let origin = origin_server().await;
        for uid in [Some(NOBODY), None] {
            let runs = both_with(&ns, uid, &app, &origin, None).await;
            assert_unauthenticated(&runs, &format!("{uid:?} without credentials"));
            let runs = both_with(&ns, uid, &app, &origin, Some("alice:wrong")).await;
            assert_unauthenticated(&runs, &format!("{uid:?} with a wrong password"));
        }
        assert_eq!(origin.connection_count(), 0, "{:?}", origin.seen());
        for uid in [Some(NOBODY), None] {
            let runs = both_with(&ns, uid, &app, &origin, Some("alice:pa%3Ass%20w0rd")).await;
            assert_served(&runs, &format!("{uid:?} with credentials"));
        }
        assert_eq!(origin.connection_count(), 6);
    });
}

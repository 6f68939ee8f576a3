//! Who may use the app-mode proxies, with real clients of real UIDs: in a network namespace of
//! its own, the test (root) runs the exit node, an origin server that records what reaches it,
//! and the proxies; `curl` runs as root or as `nobody` (`setpriv`). Without credentials only the
//! owner's sockets are served; anyone else is refused (SOCKS5 reply 2, HTTP 403) and the origin
//! sees nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod exit_support;

use std::future::Future;

use exit_support::*;
use ferry_tests::netns::{skip_unless_root, Netns};
use ferry_tunnel::proxy::Access;

const NOBODY: u32 = 65534;

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

/// Runs `curl ARGS` in namespace `ns`, as `uid` (root when `None`), with no proxy variables.
async fn curl_as(ns: &str, uid: Option<u32>, args: &[String]) -> Run {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", ns]);
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

/// Through SOCKS5 (names resolved by the proxy) and through HTTP CONNECT, to `origin`.
async fn both_proxies(ns: &str, uid: Option<u32>, app: &AppMode, origin: &Origin) -> [Run; 2] {
    let url = format!("http://localhost:{}/through", origin.addr.port());
    let socks = curl_as(
        ns,
        uid,
        &[
            "--proxy".into(),
            format!("socks5h://{}", app.proxy.socks_addr()),
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
            format!("http://{}", app.proxy.http_addr().unwrap()),
            url,
        ],
    )
    .await;
    [socks, http]
}

fn assert_served(runs: &[Run; 2], who: &str) {
    for (run, proxy) in runs.iter().zip(["SOCKS5", "HTTP CONNECT"]) {
        assert_eq!(run.code, 0, "{who} via {proxy}: {run:?}");
        assert_eq!(run.stdout, "hello /through", "{who} via {proxy}: {run:?}");
    }
}

fn assert_refused(runs: &[Run; 2], who: &str) {
    let [socks, http] = runs;
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
        assert_eq!(origin.connection_count(), 2);
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
        assert_eq!(origin.connection_count(), 2);
    });
}

//! Plain `http://` through the app-mode HTTP proxy, as a new user's tools do it: `curl`, `wget`
//! and Python's `urllib` with `http_proxy` set, against an origin server behind the exit node
//! (loopback egress) that records what reaches it. Each request must arrive in origin form,
//! with `Via` (so it came through the proxy, not around it) and without hop-by-hop headers;
//! keep-alive and chunked bodies both ways work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod exit_support;

use exit_support::*;

fn available(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `program ARGS` with `http_proxy` pointing at the proxy and no other proxy variables.
async fn with_http_proxy(app: &AppMode, program: &str, args: &[&str]) -> Run {
    let proxy = format!("http://{}", app.proxy.http_addr().unwrap());
    let out = tokio::process::Command::new(program)
        .args(args)
        .env("http_proxy", &proxy)
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every request reached the origin through the proxy, in origin form, with the target's
/// authority as `Host` and no hop-by-hop header.
fn assert_proxied(origin: &Origin) {
    let host = format!("localhost:{}", origin.addr.port());
    for r in origin.seen() {
        assert!(r.target.starts_with('/'), "not origin form: {r:?}");
        assert_eq!(r.header("via"), Some("1.1 ferry"), "{r:?}");
        assert_eq!(r.header("host"), Some(host.as_str()), "{r:?}");
        for hop in [
            "proxy-connection",
            "proxy-authorization",
            "keep-alive",
            "te",
            "upgrade",
        ] {
            assert!(r.header(hop).is_none(), "{hop} forwarded: {r:?}");
        }
    }
}

/// curl: two URLs in one run share the client connection (keep-alive) and the origin
/// connection; a chunked upload arrives whole; a chunked answer comes back whole, without the
/// origin's hop-by-hop headers.
#[tokio::test(flavor = "multi_thread")]
async fn curl_plain_http_keeps_alive_and_streams_chunked_bodies() {
    if !available("curl") {
        eprintln!("skipping: curl is not installed");
        return;
    }
    let exit = loopback_exit().await;
    let app = app_mode(&exit).await;
    let origin = origin_server().await;
    let base = format!("http://localhost:{}", origin.addr.port());

    let run = with_http_proxy(
        &app,
        "curl",
        &[
            "-sS",
            "-v",
            "--max-time",
            "20",
            &format!("{base}/first?a=1&b=2"),
            &format!("{base}/second"),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "hello /firsthello /second", "{run:?}");
    assert!(
        run.stderr.contains("Re-using existing connection"),
        "the client connection was not kept: {}",
        run.stderr
    );
    let seen = origin.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].target, "/first?a=1&b=2");
    assert_eq!(seen[1].target, "/second");
    assert_eq!(
        seen[0].connection, seen[1].connection,
        "the origin connection was not kept"
    );

    // A chunked upload, larger than any one buffer.
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("upload");
    let data: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&upload, &data).unwrap();
    let run = with_http_proxy(
        &app,
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", upload.display()),
            &format!("{base}/echo"),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.len(), data.len());
    assert!(run.stdout.as_bytes() == data.as_slice(), "echo differs");
    let echo = origin.seen().pop().unwrap();
    assert_eq!(echo.method, "POST");
    assert_eq!(echo.body, data);

    // A chunked answer (no length from the origin), and its headers.
    let run = with_http_proxy(
        &app,
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "-D",
            "-",
            &format!("{base}/chunked"),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (head, body) = run.stdout.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, "one-two-three", "{run:?}");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-origin: seen"), "{head}");
    assert!(head.contains("via: 1.1 ferry"), "{head}");
    assert!(!head.contains("x-hop"), "{head}");
    assert!(!head.contains("keep-alive: timeout"), "{head}");
    assert_proxied(&origin);
}

/// wget, with `http_proxy`: exit 0 and the body (it used to exit 8 on a 405).
#[tokio::test(flavor = "multi_thread")]
async fn wget_plain_http_through_the_proxy() {
    if !available("wget") {
        eprintln!("skipping: wget is not installed (scripts/deps.sh installs it)");
        return;
    }
    let exit = loopback_exit().await;
    let app = app_mode(&exit).await;
    let origin = origin_server().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.display().to_string();
    let url = format!("http://localhost:{}/wget", origin.addr.port());
    let run = with_http_proxy(
        &app,
        "wget",
        &[
            "--no-config",
            "-q",
            "-T",
            "20",
            "-t",
            "1",
            "-O",
            &out_s,
            &url,
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello /wget");
    assert_eq!(origin.seen().len(), 1);
    assert_proxied(&origin);
}

/// Python's urllib, with `http_proxy`: a GET and a POST (it used to raise "HTTP Error 405").
#[tokio::test(flavor = "multi_thread")]
async fn python_urllib_plain_http_through_the_proxy() {
    if !available("python3") {
        eprintln!("skipping: python3 is not installed (scripts/deps.sh installs it)");
        return;
    }
    let exit = loopback_exit().await;
    let app = app_mode(&exit).await;
    let origin = origin_server().await;
    let base = format!("http://localhost:{}", origin.addr.port());
    let script = "import sys, urllib.request as u\n\
                  get = u.urlopen(sys.argv[1] + '/python', timeout=20).read().decode()\n\
                  post = u.urlopen(sys.argv[1] + '/echo', data=b'posted by urllib', timeout=20).read().decode()\n\
                  print(get + '|' + post, end='')\n";
    let run = with_http_proxy(&app, "python3", &["-c", script, &base]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "hello /python|posted by urllib", "{run:?}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].body, b"posted by urllib");
    assert_proxied(&origin);
}

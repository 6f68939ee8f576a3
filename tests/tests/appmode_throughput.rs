//! App-mode throughput through SOCKS5: a bench, not a timed test (ignored by default).
//!
//! `cargo test --release -p ferry-tests --test appmode_throughput -- --ignored --nocapture`
//! sends `FERRY_BENCH_MB` (default 200) MB through the SOCKS5 proxy → Ferry's tunnel (pipe
//! mode) → the exit node (loopback egress) → a TCP sink on 127.0.0.1, and the same amount back
//! from a TCP source, and prints the rates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod exit_support;

use std::time::Instant;

use exit_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --release"]
async fn socks5_throughput() {
    let megabytes: usize = std::env::var("FERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let total = megabytes * 1_000_000;
    let exit = loopback_exit().await;
    let app = app_mode(&exit).await;
    let socks = app.proxy.socks_addr();

    // Upload: client → sink.
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let received = tokio::spawn(async move {
        let (mut s, _) = sink.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0usize;
        loop {
            let r = s.read(&mut buf).await.unwrap();
            if r == 0 {
                return n;
            }
            n += r;
        }
    });
    let mut up = socks_connect(socks, sink_addr).await;
    let chunk = vec![0xa5u8; 256 * 1024];
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        up.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    up.shutdown().await.unwrap();
    let got = received.await.unwrap();
    let upload = started.elapsed();
    assert_eq!(got, total);

    // Download: source → client.
    let source = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source_addr = source.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = source.accept().await.unwrap();
        let chunk = vec![0x5au8; 256 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            s.write_all(&chunk[..n]).await.unwrap();
            sent += n;
        }
        s.shutdown().await.unwrap();
    });
    let mut down = socks_connect(socks, source_addr).await;
    let started = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    loop {
        let r = down.read(&mut buf).await.unwrap();
        if r == 0 {
            break;
        }
        got += r;
    }
    let download = started.elapsed();
    assert_eq!(got, total);

    let rate = |d: std::time::Duration| (total as f64 * 8.0) / d.as_secs_f64() / 1e6;
    println!(
        "app mode via SOCKS5, {megabytes} MB each way: upload {:.0} Mbit/s ({:.2} s), download {:.0} Mbit/s ({:.2} s)",
        rate(upload),
        upload.as_secs_f64(),
        rate(download),
        download.as_secs_f64()
    );
    let stats = exit.peer_stats(&app.public_key).unwrap();
    println!(
        "exit node counted rx {} B, tx {} B",
        stats.rx_bytes, stats.tx_bytes
    );

    // Idle: a connection open through the proxy, nothing flowing. The whole process (client
    // stack, proxy, tunnel, exit node, both stacks' timers) should be nearly asleep.
    let (echo, _server) = tcp_echo_server().await;
    let mut idle = socks_connect(socks, echo).await;
    idle.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    idle.read_exact(&mut one).await.unwrap();
    let before = cpu_ticks();
    let wall = Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let used = (cpu_ticks() - before) as f64 / 100.0;
    println!(
        "idle with an open proxied connection: {:.2} % of one core over {:.0} s",
        used / wall.elapsed().as_secs_f64() * 100.0,
        wall.elapsed().as_secs_f64()
    );
}

/// User plus system CPU time of this process, in clock ticks (100 per second on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

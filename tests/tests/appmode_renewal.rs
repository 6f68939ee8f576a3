//! App mode across a tunnel renewal (after a network change; OrbNET renews with the same config
//! and the same server session), through the real `WgTunnels` factory and a real exit node: the
//! WireGuard loop moves to a new UDP socket and a new handshake while the proxies, their ports
//! and a TCP connection open through them go on. A config with other inside addresses gets new
//! proxies instead, and the open connection ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod exit_support;

use std::net::IpAddr;
use std::time::Duration;

use boringtun::x25519::{PublicKey, StaticSecret};
use exit_support::*;
use ferry_core::session::ports::{TunnelFactory, TunnelHandle};
use ferry_core::session::wg_tunnels::{HelperLink, WgTunnels};
use ferry_tunnel::exit::ExitNode;
use ferry_tunnel::wgconf::WgConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

/// A config for a new client key registered at `exit` as `tunnel_ip`.
fn config_for(exit: &ExitNode, key: &StaticSecret, tunnel_ip: IpAddr) -> WgConfig {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    exit.add_peer(PublicKey::from(key), tunnel_ip);
    let text = format!(
        "[Interface]\nPrivateKey = {}\nAddress = {tunnel_ip}/32\n\n[Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 0.0.0.0/0\n",
        b64.encode(key.to_bytes()),
        b64.encode(exit.public_key().as_bytes()),
        exit.local_addr(),
    );
    WgConfig::parse(&text).unwrap()
}

fn app_mode_tunnels() -> WgTunnels {
    WgTunnels {
        system: false,
        proxy: "127.0.0.1:0".parse().unwrap(),
        any_port_if_taken: true,
        access: ferry_tunnel::proxy::Access::default(),
        helper: HelperLink::default(),
    }
}

async fn echo(conn: &mut TcpStream, text: &[u8]) {
    conn.write_all(text).await.unwrap();
    let mut back = vec![0u8; text.len()];
    tokio::time::timeout(WAIT, conn.read_exact(&mut back))
        .await
        .expect("the echo within 10 s")
        .unwrap();
    assert_eq!(back, text);
}

#[tokio::test]
async fn a_renewal_keeps_the_proxies_their_ports_and_an_open_connection() {
    let exit = loopback_exit().await;
    let (echo_addr, _server) = tcp_echo_server().await;
    let key = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let config = config_for(&exit, &key, "10.64.0.2".parse().unwrap());
    let tunnels = app_mode_tunnels();

    let old = tunnels.up(config.clone()).await.unwrap();
    old.first_handshake(WAIT).await.unwrap();
    let (socks, http) = (old.proxy().unwrap(), old.http_proxy());
    assert!(http.is_some(), "the HTTP proxy runs beside SOCKS5");
    let mut conn = socks_connect(socks.parse().unwrap(), echo_addr).await;
    echo(&mut conn, b"before the network change").await;

    let new = tunnels.renew(&old, config.clone()).await.unwrap();
    new.first_handshake(WAIT).await.unwrap();
    // The old loop is down for good (its end resolves at once; its figures are final).
    tokio::time::timeout(WAIT, old.closed()).await.unwrap();
    let old_final = old.traffic();
    // A new WireGuard session (the new loop timed its own handshake), on the same ports.
    assert!(new.latency().is_some(), "the new loop's handshake");
    assert_eq!(new.proxy(), Some(socks.clone()), "the same SOCKS5 port");
    assert_eq!(new.http_proxy(), http, "the same HTTP port");

    // The connection opened before the change goes on, through the new loop.
    echo(&mut conn, b"after the network change").await;
    assert_eq!(
        old.traffic(),
        old_final,
        "nothing went through the old loop"
    );
    // (The loop publishes its counters on its timer tick.)
    tokio::time::timeout(WAIT, async {
        while !(new.traffic().0 > 0 && new.traffic().1 > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the new loop counts the connection's bytes");
    // New connections work too; downing the old tunnel again leaves the proxies alone.
    old.down().await;
    let mut fresh = socks_connect(socks.parse().unwrap(), echo_addr).await;
    echo(&mut fresh, b"a new connection").await;

    // Down for real: the proxies close with it.
    new.down().await;
    assert!(
        TcpStream::connect(&socks).await.is_err(),
        "the SOCKS5 port is closed after down"
    );
}

#[tokio::test]
async fn a_renewal_to_other_inside_addresses_starts_new_proxies() {
    let exit = loopback_exit().await;
    let (echo_addr, _server) = tcp_echo_server().await;
    let tunnels = app_mode_tunnels();
    let key = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let old = tunnels
        .up(config_for(&exit, &key, "10.64.0.2".parse().unwrap()))
        .await
        .unwrap();
    old.first_handshake(WAIT).await.unwrap();
    let mut conn = socks_connect(old.proxy().unwrap().parse().unwrap(), echo_addr).await;
    echo(&mut conn, b"before").await;

    let other = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let new = tunnels
        .renew(
            &old,
            config_for(&exit, &other, "10.64.0.3".parse().unwrap()),
        )
        .await
        .unwrap();
    new.first_handshake(WAIT).await.unwrap();
    // The old proxies are gone with their connection (its address no longer exists).
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, conn.read(&mut buf))
        .await
        .expect("the old connection ends within 10 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let mut fresh = socks_connect(new.proxy().unwrap().parse().unwrap(), echo_addr).await;
    echo(&mut fresh, b"through the new proxies").await;
    new.down().await;
}

//! The wg-quick config tunnelbyte returns in `wg_config`.
//!
//! The vendor does not publish its exact content; the lab writes a standard wg-quick INI with
//! `PrivateKey` only when the server generated the keypair, a /32 `Address` from the region's
//! /24, `DNS` pointing at the resolver the exit node answers inside the tunnel, full-tunnel
//! `AllowedIPs` and a 25 s keepalive.

use crate::exit_key::b64;
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddr};

/// What goes into one config.
pub struct WgConfig {
    /// The client's private key, only when the server generated it.
    pub private_key: Option<[u8; 32]>,
    /// The client's tunnel address.
    pub address: Ipv4Addr,
    /// The exit node's public key.
    pub server_public_key: [u8; 32],
    /// The exit node's UDP endpoint.
    pub endpoint: SocketAddr,
}

/// Renders `c` as wg-quick INI text.
pub fn render(c: &WgConfig) -> String {
    let mut s = String::from("[Interface]\n");
    if let Some(k) = &c.private_key {
        let _ = writeln!(s, "PrivateKey = {}", b64(k));
    }
    let _ = writeln!(s, "Address = {}/32", c.address);
    let _ = writeln!(s, "DNS = {}", crate::exit::TUNNEL_DNS);
    s.push_str("\n[Peer]\n");
    let _ = writeln!(s, "PublicKey = {}", b64(&c.server_public_key));
    let _ = writeln!(s, "Endpoint = {}", c.endpoint);
    s.push_str("AllowedIPs = 0.0.0.0/0, ::/0\n");
    s.push_str("PersistentKeepalive = 25\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_only_when_given() {
        let mut c = WgConfig {
            private_key: None,
            address: Ipv4Addr::new(10, 77, 1, 2),
            server_public_key: [7; 32],
            endpoint: "127.0.0.1:51820".parse().unwrap(),
        };
        let text = render(&c);
        assert!(!text.contains("PrivateKey"));
        assert!(text.contains("Address = 10.77.1.2/32\n"));
        assert!(text.contains("Endpoint = 127.0.0.1:51820\n"));
        c.private_key = Some([1; 32]);
        assert!(render(&c).contains(&format!("PrivateKey = {}\n", b64(&[1; 32]))));
    }
}

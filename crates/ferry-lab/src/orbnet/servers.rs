//! The OrbNET server list and WireGuard configs.
//!
//! `GET /vpn/servers` is not in the public docs (they mention "Server Details" and config URLs
//! under `/vpn/servers/{id}/...`). This is our reading: `data.servers[]`, each item carrying
//! `id, name, city, country` plus the fields of the `server` object documented for
//! `GET /vpn/connection` (`host_name, public_ip, type, continent, crypto_friendly,
//! bridge_capable, bridge_country, bridge_priority, description, hidden`). Every lab server
//! routes to the lab's one exit node, so `public_ip` is the exit node's address.

use crate::exit_key;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};

/// One server of the seeded list.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    /// Server id (the seed's example uses 101).
    pub id: u64,
    /// Display name.
    pub name: &'static str,
    /// Host name.
    pub host_name: &'static str,
    /// City.
    pub city: &'static str,
    /// ISO country code.
    pub country: &'static str,
    /// Continent code.
    pub continent: &'static str,
    /// Hidden servers exist but are not meant to be offered.
    pub hidden: bool,
}

/// The seeded servers.
pub const SERVERS: &[Server] = &[
    Server {
        id: 101,
        name: "New York #1",
        host_name: "us-nyc-101.orbnet.lab",
        city: "New York",
        country: "US",
        continent: "NA",
        hidden: false,
    },
    Server {
        id: 102,
        name: "Frankfurt #1",
        host_name: "de-fra-102.orbnet.lab",
        city: "Frankfurt",
        country: "DE",
        continent: "EU",
        hidden: false,
    },
    Server {
        id: 103,
        name: "Tokyo #1",
        host_name: "jp-tyo-103.orbnet.lab",
        city: "Tokyo",
        country: "JP",
        continent: "AS",
        hidden: false,
    },
    Server {
        id: 104,
        name: "London #1",
        host_name: "gb-lon-104.orbnet.lab",
        city: "London",
        country: "GB",
        continent: "EU",
        hidden: false,
    },
    Server {
        id: 199,
        name: "Staging",
        host_name: "xx-stg-199.orbnet.lab",
        city: "Zurich",
        country: "CH",
        continent: "EU",
        hidden: true,
    },
];

/// The server with `id`.
pub fn find(id: u64) -> Option<&'static Server> {
    SERVERS.iter().find(|s| s.id == id)
}

/// The server `authorize` picks when the client names none: the first visible one.
pub fn default_server() -> &'static Server {
    &SERVERS[0]
}

impl Server {
    /// The server as JSON, with the exit node's address as `public_ip`.
    pub fn json(&self, public_ip: IpAddr) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "host_name": self.host_name,
            "public_ip": public_ip.to_string(),
            "type": "premium",
            "city": self.city,
            "country": self.country,
            "continent": self.continent,
            "crypto_friendly": false,
            "bridge_capable": false,
            "bridge_country": null,
            "bridge_priority": 0,
            "description": format!("{} ({})", self.city, self.country),
            "hidden": self.hidden,
        })
    }
}

/// DNS servers put in configs. The WireGuard page's example shows public resolvers
/// (`1.1.1.1, 1.0.0.1`); the lab puts the resolver its exit node answers inside the tunnel, so
/// names resolve with loopback-only egress too.
pub const DNS: [std::net::Ipv4Addr; 1] = [crate::exit::TUNNEL_DNS];
/// Interface MTU.
pub const MTU: u16 = 1420;
/// Peer keepalive, seconds.
pub const KEEPALIVE: u16 = 25;
/// Routed through the tunnel.
pub const ALLOWED_IPS: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// The `GET /vpn/servers/{id}/wireguard` answer for a server-generated keypair: the parsed
/// fields and the wg-quick text.
pub fn wireguard_json(
    keys: &exit_key::KeyPair,
    address: IpAddr,
    endpoint: SocketAddr,
    exit_public: &[u8; 32],
) -> Value {
    let private_key = exit_key::b64(&keys.private);
    let public_key = exit_key::b64(exit_public);
    let address = format!("{address}/32");
    let config = format!(
        "[Interface]\nPrivateKey = {private_key}\nAddress = {address}\nDNS = {dns}\nMTU = {MTU}\n\n\
         [Peer]\nPublicKey = {public_key}\nEndpoint = {endpoint}\nAllowedIPs = {allowed}\n\
         PersistentKeepalive = {KEEPALIVE}\n",
        dns = DNS.map(|d| d.to_string()).join(", "),
        allowed = ALLOWED_IPS.join(", "),
    );
    json!({
        "interface": {
            "private_key": private_key,
            "address": address,
            "dns": DNS,
            "mtu": MTU,
        },
        "peer": {
            "public_key": public_key,
            "endpoint": endpoint.to_string(),
            "allowed_ips": ALLOWED_IPS,
            "persistent_keepalive": KEEPALIVE,
        },
        "config": config,
    })
}

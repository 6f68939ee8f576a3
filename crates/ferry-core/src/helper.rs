//! System mode through the privileged helper (`ferry-helper`): used when this process lacks
//! CAP_NET_ADMIN (or `$FERRY_HELPER_SOCKET` is set). The helper sets up the TUN device, the
//! marked socket, routes, DNS and the kill switch and hands the descriptors back; the tunnel
//! here runs only the data plane ([`Mode::Handed`]). Keys and tokens stay in this process.

use ferry_helper::client::{self, Helper};
use ferry_helper::proto::{Label, OpenRequest};
use ferry_tunnel::tunnel::{HandedDevice, Mode, Tunnel, DEFAULT_MTU};
use ferry_tunnel::wgconf::{Endpoint, WgConfig};
use std::net::SocketAddr;

pub use ferry_helper::client::ClientError;

/// True if this process's effective capabilities include CAP_NET_ADMIN.
pub fn has_net_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    cap_net_admin_in(&status)
}

/// True if the `CapEff:` line of a `/proc/PID/status` text has bit 12 (CAP_NET_ADMIN).
pub fn cap_net_admin_in(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

/// True if system mode must go through the helper: no CAP_NET_ADMIN here, or
/// `$FERRY_HELPER_SOCKET` names one explicitly.
pub fn use_helper() -> bool {
    std::env::var_os(client::SOCKET_ENV).is_some_and(|v| !v.is_empty()) || !has_net_admin()
}

/// Connects to the helper at `$FERRY_HELPER_SOCKET` (default `/run/ferry/helper.sock`).
pub async fn connect() -> Result<Helper, ClientError> {
    Helper::connect(&client::socket_path()).await
}

/// Errors bringing a tunnel up through the helper.
#[derive(Debug, thiserror::Error)]
pub enum HelperTunnelError {
    /// The config cannot be used.
    #[error("{0}")]
    Config(String),
    /// The helper refused or failed.
    #[error(transparent)]
    Helper(#[from] ClientError),
    /// The data plane did not start.
    #[error(transparent)]
    Tunnel(#[from] ferry_tunnel::error::TunnelError),
}

async fn resolve(ep: &Endpoint) -> Result<SocketAddr, HelperTunnelError> {
    match ep {
        Endpoint::Addr(a) => Ok(*a),
        Endpoint::Host(h, p) => tokio::net::lookup_host((h.as_str(), *p))
            .await
            .map_err(|e| HelperTunnelError::Config(format!("cannot resolve {h}: {e}")))?
            .next()
            .ok_or_else(|| HelperTunnelError::Config(format!("{h} has no addresses"))),
    }
}

/// What a session tells the helper besides the tunnel's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// Shown by `ferry status`.
    pub label: Label,
    /// Let the LAN through the block.
    pub allow_lan: bool,
    /// The services' API servers, let through the block while reconnecting.
    pub api: Vec<SocketAddr>,
}

/// The API servers of a base URL (`https://host[:port]/...`), resolved; loopback ones are
/// left out (loopback always passes the block).
pub async fn api_servers(base_url: &str) -> Vec<SocketAddr> {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        return Vec::new();
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Vec::new();
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let found = tokio::net::lookup_host((host.as_str(), port)).await;
    match found {
        Ok(addrs) => {
            let mut v: Vec<SocketAddr> = addrs.filter(|a| !a.ip().is_loopback()).collect();
            v.sort();
            v.dedup();
            v.truncate(ferry_helper::proto::MAX_API);
            v
        }
        Err(e) => {
            tracing::debug!(error = %e, %host, "API host not resolved for the block");
            Vec::new()
        }
    }
}

/// What the helper is asked for: only addresses, routes, DNS, the endpoint and the API servers.
pub fn open_request(
    config: &WgConfig,
    endpoint: SocketAddr,
    ifname: &str,
    info: SessionInfo,
) -> Result<OpenRequest, HelperTunnelError> {
    let [peer] = config.peers.as_slice() else {
        return Err(HelperTunnelError::Config(format!(
            "need exactly one [Peer], got {}",
            config.peers.len()
        )));
    };
    Ok(OpenRequest {
        ifname: ifname.to_string(),
        addresses: config.interface.addresses.clone(),
        mtu: config.interface.mtu.unwrap_or(DEFAULT_MTU),
        allowed_ips: peer.allowed_ips.clone(),
        dns: config.interface.dns.clone(),
        dns_search: config.interface.dns_search.clone(),
        endpoint,
        listen_port: config.interface.listen_port,
        allow_lan: info.allow_lan,
        label: info.label,
        api: info.api,
    })
}

/// Asks the helper for a tunnel (block first, then TUN, socket, routes, DNS) and starts the
/// data plane over the descriptors it hands back. The endpoint is resolved here.
pub async fn tunnel_via_helper(
    helper: &Helper,
    mut config: WgConfig,
    ifname: &str,
    info: SessionInfo,
) -> Result<Tunnel, HelperTunnelError> {
    let endpoint = match config.peers.first().and_then(|p| p.endpoint.clone()) {
        Some(ep) => resolve(&ep).await?,
        None => {
            return Err(HelperTunnelError::Config(
                "system mode through the helper needs the peer's Endpoint".into(),
            ))
        }
    };
    if let Some(p) = config.peers.first_mut() {
        p.endpoint = Some(Endpoint::Addr(endpoint));
    }
    let req = open_request(&config, endpoint, ifname, info)?;
    let opened = helper.open(req).await?;
    let dev = HandedDevice {
        tun: opened.tun,
        vnet: opened.vnet,
        ifname: opened.ifname,
        socket: opened.socket,
        mtu: opened.mtu,
    };
    Ok(Tunnel::up(config, Mode::Handed(dev)).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cap_net_admin_is_bit_12_of_capeff() {
        assert!(cap_net_admin_in("CapInh:\t0\nCapEff:\t000001ffffffffff\n"));
        assert!(cap_net_admin_in("CapEff:\t0000000000001000\n"));
        assert!(!cap_net_admin_in("CapEff:\t0000000000000000\n"));
        assert!(!cap_net_admin_in("CapEff:\t0000000000000fff\n"));
        assert!(!cap_net_admin_in("Name: x\n"));
    }

    #[tokio::test]
    async fn api_servers_come_from_the_base_url_without_loopback() {
        assert_eq!(
            api_servers("https://203.0.113.7/api/v1").await,
            vec!["203.0.113.7:443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            api_servers("http://[2001:db8::7]:8080/").await,
            vec!["[2001:db8::7]:8080".parse::<SocketAddr>().unwrap()]
        );
        assert!(api_servers("http://127.0.0.1:9/").await.is_empty());
        assert!(api_servers("not a url").await.is_empty());
    }

    #[test]
    fn the_request_carries_no_keys() {
        let cfg = WgConfig::parse(
            "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
             Address = 10.64.0.2/32\nDNS = 10.64.0.1\n\n[Peer]\n\
             PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
             Endpoint = 198.18.0.2:51820\nAllowedIPs = 0.0.0.0/0\n",
        )
        .unwrap();
        let req = open_request(
            &cfg,
            "198.18.0.2:51820".parse().unwrap(),
            "ferry0",
            SessionInfo::default(),
        )
        .unwrap();
        req.validate().unwrap();
        let text = serde_json::to_string(&req).unwrap();
        assert!(!text.contains("yAnz5TF"), "{text}");
        assert!(!text.contains("xTIBA5"), "{text}");
    }
}

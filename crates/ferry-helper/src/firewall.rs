//! The kill switch: one nftables table, `inet ferry`, rendered from a [`Rules`] value by the pure
//! function [`render`] and replaced atomically by one `nft -f -` transaction (the script adds
//! the table, deletes it and defines it again, so the kernel swaps old for new at once, and an
//! error anywhere leaves the old rules in force).
//!
//! In a blocking policy only these pass, for IPv4 and IPv6:
//! - loopback;
//! - DHCP (v4 UDP 68→67, v6 546→547) and the neighbour-discovery messages a link needs;
//! - the WireGuard endpoint: UDP to its IP and port, only from sockets carrying the tunnel's
//!   fwmark (which only a process with CAP_NET_ADMIN can set, or one handed the helper's socket);
//! - with `allow_lan`, RFC 1918, link-local and ULA destinations (never port 53);
//! - in [`Policy::TunnelOnly`], anything leaving by the tunnel interface (IPv6 only when the
//!   tunnel carries IPv6).
//!
//! DNS (port 53) is dropped everywhere but inside the tunnel. Input drops what was not asked
//! for (except loopback, the tunnel, DHCP replies and neighbour discovery); forward drops what
//! would not go through the tunnel.

use crate::proto::Policy;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The table's family and name.
pub const TABLE: &str = "inet ferry";

/// What the table must enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The policy.
    pub policy: Policy,
    /// The tunnel interface (used by [`Policy::TunnelOnly`]).
    pub tunnel: Option<String>,
    /// True if the tunnel carries IPv6 (else IPv6 never passes the tunnel rule).
    pub tunnel_v6: bool,
    /// The session's endpoint, let through in [`Policy::TunnelOnly`] too.
    pub endpoint: Option<std::net::SocketAddr>,
    /// The services' API servers (TCP), let through in every blocking policy.
    pub api: Vec<std::net::SocketAddr>,
    /// The fwmark of the tunnel's UDP socket.
    pub fwmark: u32,
    /// Let LAN traffic pass.
    pub allow_lan: bool,
}

/// Errors applying a ruleset.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` could not be run.
    #[error("cannot run {nft}: {source}")]
    Spawn {
        /// The binary.
        nft: String,
        /// Why.
        source: std::io::Error,
    },
    /// `nft` refused the script.
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
    /// An interface name that cannot go into a ruleset.
    #[error("interface name {0:?} cannot go into a ruleset")]
    BadInterface(String),
}

const LAN4: &str = "{ 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16 }";
const LAN6: &str = "{ fe80::/10, fc00::/7 }";
const LAN_MCAST4: &str = "224.0.0.0/24";
const LAN_MCAST6: &str = "ff02::/16";

/// The `nft -f` script that puts `rules` in force (for [`Policy::Open`]: removes the table).
/// Pure: the same value always gives the same text.
pub fn render(rules: &Rules) -> Result<String, FirewallError> {
    let mut s = format!("add table {TABLE}\ndelete table {TABLE}\n");
    if rules.policy == Policy::Open {
        return Ok(s);
    }
    let tunnel = match (&rules.policy, &rules.tunnel) {
        (Policy::TunnelOnly, Some(t)) => {
            if !ferry_tunnel::system::tun::valid_ifname(t) {
                return Err(FirewallError::BadInterface(t.clone()));
            }
            Some(t.as_str())
        }
        _ => None,
    };
    let endpoint = match rules.policy {
        Policy::TunnelEndpointOnly { endpoint } => endpoint,
        Policy::TunnelOnly => rules.endpoint,
        Policy::Open => None,
    };
    let mark = rules.fwmark;
    let mut out = Vec::<String>::new();
    let mut inp = Vec::<String>::new();
    let mut fwd = Vec::<String>::new();

    out.push("oifname \"lo\" accept".into());
    inp.push("iifname \"lo\" accept".into());
    inp.push("ct state established,related accept".into());
    fwd.push("ct state established,related accept".into());
    if let Some(ep) = endpoint {
        let fam = if ep.is_ipv4() { "ip" } else { "ip6" };
        out.push(format!(
            "meta mark {mark} {fam} daddr {} udp dport {} accept",
            ep.ip(),
            ep.port()
        ));
    }
    for a in &rules.api {
        let fam = if a.is_ipv4() { "ip" } else { "ip6" };
        out.push(format!(
            "{fam} daddr {} tcp dport {} accept",
            a.ip(),
            a.port()
        ));
    }
    if let Some(t) = tunnel {
        let v4_only = if rules.tunnel_v6 {
            ""
        } else {
            "meta nfproto ipv4 "
        };
        out.push(format!("{v4_only}oifname \"{t}\" accept"));
        inp.push(format!("{v4_only}iifname \"{t}\" accept"));
        fwd.push(format!("{v4_only}oifname \"{t}\" accept"));
    }
    // DHCP and what a link needs to work at all.
    out.push("meta nfproto ipv4 udp sport 68 udp dport 67 accept".into());
    out.push("meta nfproto ipv6 udp sport 546 udp dport 547 accept".into());
    out.push(
        "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept"
            .into(),
    );
    inp.push("meta nfproto ipv4 udp sport 67 udp dport 68 accept".into());
    inp.push("meta nfproto ipv6 udp sport 547 udp dport 546 accept".into());
    inp.push(
        "icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } ip6 hoplimit 255 accept"
            .into(),
    );
    if rules.allow_lan {
        // DNS only through the tunnel, even to a LAN resolver.
        out.push("udp dport 53 drop".into());
        out.push("tcp dport 53 drop".into());
        for (fam, set) in [
            ("ip", LAN4),
            ("ip", LAN_MCAST4),
            ("ip6", LAN6),
            ("ip6", LAN_MCAST6),
        ] {
            out.push(format!("{fam} daddr {set} accept"));
        }
        for (fam, set) in [("ip", LAN4), ("ip6", LAN6)] {
            inp.push(format!("{fam} saddr {set} accept"));
            fwd.push(format!("{fam} daddr {set} accept"));
        }
    }

    s.push_str(&format!("table {TABLE} {{\n"));
    for (name, hook, rules) in [
        ("output", "output", out),
        ("input", "input", inp),
        ("forward", "forward", fwd),
    ] {
        s.push_str(&format!(
            "  chain {name} {{\n    type filter hook {hook} priority -10; policy drop;\n"
        ));
        for r in rules {
            s.push_str(&format!("    {r}\n"));
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    Ok(s)
}

/// Runs `nft`.
#[derive(Debug, Clone)]
pub struct Nft {
    /// The binary (default `/usr/sbin/nft` when it exists, else `nft` from `PATH`).
    pub bin: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        let abs = PathBuf::from("/usr/sbin/nft");
        Self {
            bin: if abs.exists() { abs } else { "nft".into() },
        }
    }
}

impl Nft {
    /// Puts `rules` in force in one transaction.
    pub fn apply(&self, rules: &Rules) -> Result<(), FirewallError> {
        let script = render(rules)?;
        tracing::debug!(policy = ?rules.policy, "nft ruleset");
        self.run_script(&script)
    }

    /// Removes the table (whether or not it exists).
    pub fn clear(&self) -> Result<(), FirewallError> {
        self.apply(&Rules {
            policy: Policy::Open,
            tunnel: None,
            tunnel_v6: false,
            endpoint: None,
            api: Vec::new(),
            fwmark: 0,
            allow_lan: false,
        })
    }

    /// True if the table is in the kernel.
    pub fn active(&self) -> bool {
        Command::new(&self.bin)
            .args(["list", "table", "inet", "ferry"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn run_script(&self, script: &str) -> Result<(), FirewallError> {
        let spawn = |source| FirewallError::Spawn {
            nft: self.bin.display().to_string(),
            source,
        };
        let mut child = Command::new(&self.bin)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(spawn)?;
        }
        let out = child.wait_with_output().map_err(spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(FirewallError::Refused(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rules(policy: Policy) -> Rules {
        Rules {
            policy,
            tunnel: Some("ferry0".into()),
            tunnel_v6: false,
            endpoint: Some("198.18.0.2:51820".parse().unwrap()),
            api: Vec::new(),
            fwmark: 51820,
            allow_lan: false,
        }
    }

    fn chain<'a>(script: &'a str, name: &str) -> Vec<&'a str> {
        let start = script.find(&format!("chain {name} {{")).unwrap();
        script[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.trim() != "}")
            .map(str::trim)
            .collect()
    }

    #[test]
    fn open_only_removes_the_table() {
        let s = render(&rules(Policy::Open)).unwrap();
        assert_eq!(s, "add table inet ferry\ndelete table inet ferry\n");
    }

    #[test]
    fn every_blocking_policy_replaces_the_table_atomically_and_drops_by_default() {
        for p in [
            Policy::TunnelOnly,
            Policy::TunnelEndpointOnly { endpoint: None },
        ] {
            let s = render(&rules(p)).unwrap();
            assert!(
                s.starts_with("add table inet ferry\ndelete table inet ferry\ntable inet ferry {"),
                "{s}"
            );
            for c in ["output", "input", "forward"] {
                assert_eq!(
                    chain(&s, c)[0],
                    format!("type filter hook {c} priority -10; policy drop;")
                );
            }
        }
    }

    #[test]
    fn connecting_lets_only_the_marked_socket_reach_the_endpoint() {
        let s = render(&rules(Policy::TunnelEndpointOnly {
            endpoint: Some("198.18.0.2:51820".parse().unwrap()),
        }))
        .unwrap();
        let out = chain(&s, "output");
        assert!(out.contains(&"meta mark 51820 ip daddr 198.18.0.2 udp dport 51820 accept"));
        assert!(out.contains(&"oifname \"lo\" accept"));
        assert!(out.contains(&"meta nfproto ipv4 udp sport 68 udp dport 67 accept"));
        assert!(out.contains(&"meta nfproto ipv6 udp sport 546 udp dport 547 accept"));
        // Not the tunnel yet, no LAN, no DNS.
        assert!(!s.contains("oifname \"ferry0\""), "{s}");
        assert!(!s.contains("10.0.0.0/8"));
        assert!(!s.contains("dport 53 accept"));
        let s6 = render(&rules(Policy::TunnelEndpointOnly {
            endpoint: Some("[2001:db8::1]:443".parse().unwrap()),
        }))
        .unwrap();
        assert!(chain(&s6, "output")
            .contains(&"meta mark 51820 ip6 daddr 2001:db8::1 udp dport 443 accept"));
    }

    #[test]
    fn no_endpoint_known_lets_no_endpoint_through() {
        let s = render(&rules(Policy::TunnelEndpointOnly { endpoint: None })).unwrap();
        assert!(!s.contains("daddr 198.18"), "{s}");
        assert!(!chain(&s, "output").iter().any(|r| r.contains("meta mark")));
    }

    #[test]
    fn connected_allows_the_tunnel_and_ipv6_only_when_it_carries_ipv6() {
        let s = render(&rules(Policy::TunnelOnly)).unwrap();
        let out = chain(&s, "output");
        assert!(
            out.contains(&"meta nfproto ipv4 oifname \"ferry0\" accept"),
            "{s}"
        );
        assert!(out.contains(&"meta mark 51820 ip daddr 198.18.0.2 udp dport 51820 accept"));
        assert!(chain(&s, "forward").contains(&"meta nfproto ipv4 oifname \"ferry0\" accept"));
        let mut r = rules(Policy::TunnelOnly);
        r.tunnel_v6 = true;
        let s = render(&r).unwrap();
        assert!(chain(&s, "output").contains(&"oifname \"ferry0\" accept"));
        assert!(chain(&s, "input").contains(&"iifname \"ferry0\" accept"));
    }

    #[test]
    fn lan_is_allowed_only_when_asked_and_never_for_dns() {
        let mut r = rules(Policy::TunnelEndpointOnly { endpoint: None });
        r.allow_lan = true;
        let s = render(&r).unwrap();
        let out = chain(&s, "output");
        let drop53 = out.iter().position(|l| *l == "udp dport 53 drop").unwrap();
        let lan = out
            .iter()
            .position(|l| l.starts_with("ip daddr { 10.0.0.0/8"))
            .unwrap();
        assert!(drop53 < lan, "{s}");
        assert!(out.contains(&"ip6 daddr { fe80::/10, fc00::/7 } accept"));
        assert!(out.contains(&"tcp dport 53 drop"));
    }

    #[test]
    fn input_drops_the_unsolicited() {
        let s = render(&rules(Policy::TunnelEndpointOnly { endpoint: None })).unwrap();
        let inp = chain(&s, "input");
        assert!(inp.contains(&"ct state established,related accept"));
        assert!(inp.contains(&"iifname \"lo\" accept"));
        assert!(!inp.iter().any(|l| l.contains("tcp dport")));
    }

    #[test]
    fn a_hostile_interface_name_never_reaches_the_script() {
        let mut r = rules(Policy::TunnelOnly);
        r.tunnel = Some("x\" accept; #".into());
        assert!(matches!(render(&r), Err(FirewallError::BadInterface(_))));
    }

    #[test]
    fn api_servers_pass_over_tcp_only_to_their_port() {
        let mut r = rules(Policy::TunnelEndpointOnly { endpoint: None });
        r.api = vec![
            "203.0.113.7:443".parse().unwrap(),
            "[2001:db8::7]:8443".parse().unwrap(),
        ];
        let s = render(&r).unwrap();
        let out = chain(&s, "output");
        assert!(
            out.contains(&"ip daddr 203.0.113.7 tcp dport 443 accept"),
            "{s}"
        );
        assert!(
            out.contains(&"ip6 daddr 2001:db8::7 tcp dport 8443 accept"),
            "{s}"
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let r = rules(Policy::TunnelOnly);
        assert_eq!(render(&r).unwrap(), render(&r.clone()).unwrap());
    }
}

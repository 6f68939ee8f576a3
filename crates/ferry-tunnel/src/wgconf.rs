//! wg-quick configuration files: a strict parser and a writer.
//!
//! Accepted keys: `[Interface]` `PrivateKey`, `Address`, `DNS`, `MTU`, `ListenPort`; `[Peer]`
//! `PublicKey`, `PresharedKey`, `Endpoint`, `AllowedIPs`, `PersistentKeepalive`. Keys are matched
//! case-insensitively (as `wg` does); `Address`, `DNS` and `AllowedIPs` take comma-separated lists
//! and may repeat. `PreUp/PostUp/PreDown/PostDown/SaveConfig/Table/FwMark` are refused: they would
//! run shell commands or change routing outside Ferry's control. Every error names its line.
//!
//! A config may lack `PrivateKey` when the client supplies its own key (a vendor hands out a
//! config for a key generated on the device): fill it with [`WgConfig::with_private_key`].

use crate::keys::{KeyError, PresharedKey, PrivateKey, PublicKey};
use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// A parse error, always with the 1-based line it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// A section header other than `[Interface]` or `[Peer]`.
    #[error("line {line}: unknown section {name}")]
    UnknownSection {
        /// Line number.
        line: usize,
        /// The header as written.
        name: String,
    },
    /// A `key = value` line before any section header.
    #[error("line {line}: key outside any section")]
    OutsideSection {
        /// Line number.
        line: usize,
    },
    /// A line that is neither a header, a comment nor `key = value`.
    #[error("line {line}: expected `Key = Value`")]
    Syntax {
        /// Line number.
        line: usize,
    },
    /// A key Ferry does not know in this section.
    #[error("line {line}: unknown key {key}")]
    UnknownKey {
        /// Line number.
        line: usize,
        /// The key as written.
        key: String,
    },
    /// A key that runs commands or changes routing (`PostUp`, `Table`, ...).
    #[error(
        "line {line}: {key} is not allowed (Ferry never runs hook commands or custom routing)"
    )]
    Forbidden {
        /// Line number.
        line: usize,
        /// The key as written.
        key: String,
    },
    /// A single-valued key given twice in one section.
    #[error("line {line}: {key} given twice")]
    Duplicate {
        /// Line number.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// A value that does not parse.
    #[error("line {line}: invalid {key}: {reason}")]
    Invalid {
        /// Line number.
        line: usize,
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A key that fails key validation (base64, 32 bytes, not zero).
    #[error("line {line}: invalid {key}: {source}")]
    Key {
        /// Line number.
        line: usize,
        /// The key name.
        key: &'static str,
        /// The key error.
        source: KeyError,
    },
    /// A required key is missing from the section starting at `line`.
    #[error("line {line}: section is missing {key}")]
    Missing {
        /// Line of the section header (0 for a missing `[Interface]`).
        line: usize,
        /// The missing key or section.
        key: &'static str,
    },
}

/// Where a peer is reached: an IP socket address or a host name and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A literal address such as `198.51.100.1:51820` or `[2001:db8::1]:51820`.
    Addr(SocketAddr),
    /// A DNS name and port, resolved when the tunnel comes up.
    Host(String, u16),
}

impl Endpoint {
    fn parse(text: &str) -> Result<Self, String> {
        if let Ok(a) = text.parse::<SocketAddr>() {
            return Ok(Self::Addr(a));
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| "expected host:port".to_string())?;
        let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !host.starts_with(['-', '.']);
        if !valid_host {
            return Err(format!("bad host {host:?}"));
        }
        Ok(Self::Host(host.to_string(), port))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Addr(a) => write!(f, "{a}"),
            Self::Host(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// The `[Interface]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// This device's private key; `None` until the client supplies its own.
    pub private_key: Option<PrivateKey>,
    /// Tunnel addresses with prefix (`10.64.0.2/32`).
    pub addresses: Vec<IpNet>,
    /// DNS servers to use while connected.
    pub dns: Vec<IpAddr>,
    /// DNS search domains (non-address entries of `DNS`).
    pub dns_search: Vec<String>,
    /// Tunnel MTU; Ferry uses 1420 when absent.
    pub mtu: Option<u16>,
    /// Local UDP port; random when absent.
    pub listen_port: Option<u16>,
}

/// One `[Peer]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's public key.
    pub public_key: PublicKey,
    /// Optional preshared key.
    pub preshared_key: Option<PresharedKey>,
    /// Where to send; a responder may leave it empty and learn it from the first handshake.
    pub endpoint: Option<Endpoint>,
    /// Networks routed to this peer and accepted from it.
    pub allowed_ips: Vec<IpNet>,
    /// Keepalive interval in seconds (0 or absent: off).
    pub persistent_keepalive: Option<u16>,
}

/// A whole wg-quick config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WgConfig {
    /// The `[Interface]` section.
    pub interface: Interface,
    /// The `[Peer]` sections in file order.
    pub peers: Vec<Peer>,
}

const FORBIDDEN: [&str; 7] = [
    "preup",
    "postup",
    "predown",
    "postdown",
    "saveconfig",
    "table",
    "fwmark",
];

enum Section {
    None,
    Interface,
    Peer(PeerDraft),
}

struct PeerDraft {
    line: usize,
    public_key: Option<PublicKey>,
    preshared_key: Option<PresharedKey>,
    endpoint: Option<Endpoint>,
    allowed_ips: Vec<IpNet>,
    persistent_keepalive: Option<u16>,
}

impl PeerDraft {
    fn finish(self) -> Result<Peer, ConfError> {
        Ok(Peer {
            public_key: self.public_key.ok_or(ConfError::Missing {
                line: self.line,
                key: "PublicKey",
            })?,
            preshared_key: self.preshared_key,
            endpoint: self.endpoint,
            allowed_ips: self.allowed_ips,
            persistent_keepalive: self.persistent_keepalive,
        })
    }
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    if let Ok(n) = text.parse::<IpNet>() {
        return Ok(n);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not an address or network"))
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    line: usize,
    key: &'static str,
) -> Result<(), ConfError> {
    if slot.is_some() {
        return Err(ConfError::Duplicate { line, key });
    }
    *slot = Some(value);
    Ok(())
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl WgConfig {
    /// Parses a wg-quick config strictly.
    pub fn parse(text: &str) -> Result<Self, ConfError> {
        let mut iface: Option<(usize, Interface)> = None;
        let mut peers = Vec::new();
        let mut section = Section::None;
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            if content.starts_with('[') {
                if let Section::Peer(d) = std::mem::replace(&mut section, Section::None) {
                    peers.push(d.finish()?);
                }
                if content.eq_ignore_ascii_case("[interface]") {
                    if iface.is_some() {
                        return Err(ConfError::Duplicate {
                            line,
                            key: "[Interface]",
                        });
                    }
                    iface = Some((line, Interface::default()));
                    section = Section::Interface;
                } else if content.eq_ignore_ascii_case("[peer]") {
                    section = Section::Peer(PeerDraft {
                        line,
                        public_key: None,
                        preshared_key: None,
                        endpoint: None,
                        allowed_ips: Vec::new(),
                        persistent_keepalive: None,
                    });
                } else {
                    return Err(ConfError::UnknownSection {
                        line,
                        name: content.to_string(),
                    });
                }
                continue;
            }
            let (key, value) = content.split_once('=').ok_or(ConfError::Syntax { line })?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(ConfError::Syntax { line });
            }
            let lower = key.to_ascii_lowercase();
            if FORBIDDEN.contains(&lower.as_str()) {
                return Err(ConfError::Forbidden {
                    line,
                    key: key.to_string(),
                });
            }
            match &mut section {
                Section::None => return Err(ConfError::OutsideSection { line }),
                Section::Interface => {
                    let Some((_, i)) = iface.as_mut() else {
                        return Err(ConfError::OutsideSection { line });
                    };
                    parse_interface_key(i, &lower, key, value, line)?;
                }
                Section::Peer(d) => parse_peer_key(d, &lower, key, value, line)?,
            }
        }
        if let Section::Peer(d) = section {
            peers.push(d.finish()?);
        }
        let (_, interface) = iface.ok_or(ConfError::Missing {
            line: 0,
            key: "[Interface]",
        })?;
        Ok(Self { interface, peers })
    }

    /// Returns the config with `key` as its private key (replacing any present).
    pub fn with_private_key(mut self, key: PrivateKey) -> Self {
        self.interface.private_key = Some(key);
        self
    }

    /// Writes the config in wg-quick syntax. The text contains the private and preshared keys:
    /// store it only in files readable by the owner.
    pub fn to_conf_string(&self) -> String {
        let mut out = String::from("[Interface]\n");
        let i = &self.interface;
        if let Some(k) = &i.private_key {
            let _ = writeln!(out, "PrivateKey = {}", k.to_base64());
        }
        if !i.addresses.is_empty() {
            let _ = writeln!(out, "Address = {}", join(&i.addresses));
        }
        let dns: Vec<String> = i
            .dns
            .iter()
            .map(ToString::to_string)
            .chain(i.dns_search.iter().cloned())
            .collect();
        if !dns.is_empty() {
            let _ = writeln!(out, "DNS = {}", dns.join(", "));
        }
        if let Some(m) = i.mtu {
            let _ = writeln!(out, "MTU = {m}");
        }
        if let Some(p) = i.listen_port {
            let _ = writeln!(out, "ListenPort = {p}");
        }
        for p in &self.peers {
            let _ = writeln!(out, "\n[Peer]\nPublicKey = {}", p.public_key);
            if let Some(k) = &p.preshared_key {
                let _ = writeln!(out, "PresharedKey = {}", k.to_base64());
            }
            if let Some(e) = &p.endpoint {
                let _ = writeln!(out, "Endpoint = {e}");
            }
            if !p.allowed_ips.is_empty() {
                let _ = writeln!(out, "AllowedIPs = {}", join(&p.allowed_ips));
            }
            if let Some(k) = p.persistent_keepalive {
                let _ = writeln!(out, "PersistentKeepalive = {k}");
            }
        }
        out
    }
}

fn join(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_interface_key(
    i: &mut Interface,
    lower: &str,
    key: &str,
    value: &str,
    line: usize,
) -> Result<(), ConfError> {
    match lower {
        "privatekey" => {
            let k = PrivateKey::from_base64(value).map_err(|source| ConfError::Key {
                line,
                key: "PrivateKey",
                source,
            })?;
            set_once(&mut i.private_key, k, line, "PrivateKey")
        }
        "address" => {
            for item in list(value) {
                let net = parse_net(item).map_err(|reason| ConfError::Invalid {
                    line,
                    key: "Address",
                    reason,
                })?;
                i.addresses.push(net);
            }
            Ok(())
        }
        "dns" => {
            for item in list(value) {
                if let Ok(ip) = item.parse::<IpAddr>() {
                    i.dns.push(ip);
                } else if !item.is_empty()
                    && item.len() <= 253
                    && item
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '~')
                {
                    i.dns_search.push(item.to_string());
                } else {
                    return Err(ConfError::Invalid {
                        line,
                        key: "DNS",
                        reason: format!("{item:?} is neither an address nor a domain"),
                    });
                }
            }
            Ok(())
        }
        "mtu" => {
            let m: u16 = value.parse().map_err(|_| ConfError::Invalid {
                line,
                key: "MTU",
                reason: format!("{value:?} is not a number"),
            })?;
            if !(576..=65535).contains(&m) {
                return Err(ConfError::Invalid {
                    line,
                    key: "MTU",
                    reason: format!("{m} is outside 576..=65535"),
                });
            }
            set_once(&mut i.mtu, m, line, "MTU")
        }
        "listenport" => {
            let p: u16 = value.parse().map_err(|_| ConfError::Invalid {
                line,
                key: "ListenPort",
                reason: format!("{value:?} is not a port"),
            })?;
            set_once(&mut i.listen_port, p, line, "ListenPort")
        }
        _ => Err(ConfError::UnknownKey {
            line,
            key: key.to_string(),
        }),
    }
}

fn parse_peer_key(
    d: &mut PeerDraft,
    lower: &str,
    key: &str,
    value: &str,
    line: usize,
) -> Result<(), ConfError> {
    match lower {
        "publickey" => {
            let k = PublicKey::from_base64(value).map_err(|source| ConfError::Key {
                line,
                key: "PublicKey",
                source,
            })?;
            set_once(&mut d.public_key, k, line, "PublicKey")
        }
        "presharedkey" => {
            let k = PresharedKey::from_base64(value).map_err(|source| ConfError::Key {
                line,
                key: "PresharedKey",
                source,
            })?;
            set_once(&mut d.preshared_key, k, line, "PresharedKey")
        }
        "endpoint" => {
            let e = Endpoint::parse(value).map_err(|reason| ConfError::Invalid {
                line,
                key: "Endpoint",
                reason,
            })?;
            set_once(&mut d.endpoint, e, line, "Endpoint")
        }
        "allowedips" => {
            for item in list(value) {
                let net = parse_net(item).map_err(|reason| ConfError::Invalid {
                    line,
                    key: "AllowedIPs",
                    reason,
                })?;
                d.allowed_ips.push(net.trunc());
            }
            Ok(())
        }
        "persistentkeepalive" => {
            let k: u16 = if value.eq_ignore_ascii_case("off") {
                0
            } else {
                value.parse().map_err(|_| ConfError::Invalid {
                    line,
                    key: "PersistentKeepalive",
                    reason: format!("{value:?} is not a number of seconds"),
                })?
            };
            set_once(&mut d.persistent_keepalive, k, line, "PersistentKeepalive")
        }
        _ => Err(ConfError::UnknownKey {
            line,
            key: key.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "\
# a comment
[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
Address = 10.64.0.2/32, fd00::2/128
Address = 10.65.0.2
DNS = 10.64.0.1, example.internal
MTU = 1380
ListenPort = 51820

[Peer]
PublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw= # trailing comment
PresharedKey = FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=
Endpoint = vpn.example.com:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
";

    #[test]
    fn parses_a_full_config() {
        let c = WgConfig::parse(SAMPLE).unwrap();
        let i = &c.interface;
        assert!(i.private_key.is_some());
        assert_eq!(i.addresses.len(), 3);
        assert_eq!(i.addresses[2].to_string(), "10.65.0.2/32");
        assert_eq!(i.dns, vec!["10.64.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(i.dns_search, vec!["example.internal".to_string()]);
        assert_eq!(i.mtu, Some(1380));
        assert_eq!(i.listen_port, Some(51820));
        assert_eq!(c.peers.len(), 1);
        let p = &c.peers[0];
        assert_eq!(
            p.endpoint,
            Some(Endpoint::Host("vpn.example.com".into(), 51820))
        );
        assert_eq!(p.allowed_ips.len(), 2);
        assert_eq!(p.persistent_keepalive, Some(25));
        assert!(p.preshared_key.is_some());
    }

    #[test]
    fn parses_ipv6_endpoint_and_missing_private_key() {
        let text = "[Interface]\nAddress = 10.0.0.2/32\n[Peer]\nPublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\nEndpoint = [2001:db8::1]:443\n";
        let c = WgConfig::parse(text).unwrap();
        assert!(c.interface.private_key.is_none());
        assert_eq!(
            c.peers[0].endpoint,
            Some(Endpoint::Addr("[2001:db8::1]:443".parse().unwrap()))
        );
        let k = PrivateKey::generate();
        let c = c.with_private_key(k.clone());
        assert_eq!(c.interface.private_key, Some(k));
    }

    #[test]
    fn refuses_hook_and_routing_keys_with_line() {
        for key in [
            "PreUp",
            "PostUp",
            "PreDown",
            "PostDown",
            "SaveConfig",
            "Table",
            "FwMark",
            "postup",
        ] {
            let text = format!("[Interface]\nAddress = 10.0.0.2/32\n{key} = rm -rf /\n");
            assert_eq!(
                WgConfig::parse(&text).unwrap_err(),
                ConfError::Forbidden {
                    line: 3,
                    key: key.to_string()
                }
            );
        }
    }

    #[test]
    fn typed_errors_carry_the_line() {
        let cases: &[(&str, ConfError)] = &[
            ("Address = 1.2.3.4\n", ConfError::OutsideSection { line: 1 }),
            (
                "[Interface]\n[Wat]\n",
                ConfError::UnknownSection {
                    line: 2,
                    name: "[Wat]".into(),
                },
            ),
            ("[Interface]\nnonsense\n", ConfError::Syntax { line: 2 }),
            (
                "[Interface]\nColor = red\n",
                ConfError::UnknownKey {
                    line: 2,
                    key: "Color".into(),
                },
            ),
            (
                "[Interface]\nMTU = 1\n",
                ConfError::Invalid {
                    line: 2,
                    key: "MTU",
                    reason: "1 is outside 576..=65535".into(),
                },
            ),
            (
                "[Interface]\nMTU = 1400\nMTU = 1400\n",
                ConfError::Duplicate {
                    line: 3,
                    key: "MTU",
                },
            ),
            (
                "[Interface]\n\n[Peer]\nEndpoint = 1.2.3.4:5\n",
                ConfError::Missing {
                    line: 3,
                    key: "PublicKey",
                },
            ),
            (
                "",
                ConfError::Missing {
                    line: 0,
                    key: "[Interface]",
                },
            ),
            (
                "[Interface]\nPrivateKey = AAAA\n",
                ConfError::Key {
                    line: 2,
                    key: "PrivateKey",
                    source: KeyError::Length(3),
                },
            ),
            (
                "[Interface]\nPrivateKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
                ConfError::Key {
                    line: 2,
                    key: "PrivateKey",
                    source: KeyError::AllZero,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&WgConfig::parse(text).unwrap_err(), want, "{text:?}");
        }
        let bad_ep = "[Interface]\n[Peer]\nPublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\nEndpoint = nope\n";
        assert!(matches!(
            WgConfig::parse(bad_ep),
            Err(ConfError::Invalid {
                line: 4,
                key: "Endpoint",
                ..
            })
        ));
        let bad_ip = "[Interface]\n[Peer]\nPublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\nAllowedIPs = 10.0.0.0/33\n";
        assert!(matches!(
            WgConfig::parse(bad_ip),
            Err(ConfError::Invalid {
                line: 4,
                key: "AllowedIPs",
                ..
            })
        ));
    }

    #[test]
    fn write_then_parse_is_identity_for_sample() {
        let c = WgConfig::parse(SAMPLE).unwrap();
        assert_eq!(WgConfig::parse(&c.to_conf_string()).unwrap(), c);
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<[u8; 4]>(), 0u8..=32)
                .prop_map(|(a, p)| IpNet::new(IpAddr::from(a), p).unwrap().trunc()),
            (any::<[u8; 16]>(), 0u8..=128)
                .prop_map(|(a, p)| IpNet::new(IpAddr::from(a), p).unwrap().trunc()),
        ]
    }

    fn arb_key() -> impl Strategy<Value = [u8; 32]> {
        any::<[u8; 32]>().prop_map(|mut k| {
            k[0] |= 1;
            k
        })
    }

    fn arb_peer() -> impl Strategy<Value = Peer> {
        (
            arb_key(),
            proptest::option::of(arb_key()),
            proptest::option::of(prop_oneof![
                any::<(std::net::Ipv4Addr, u16)>()
                    .prop_map(|(a, p)| Endpoint::Addr(SocketAddr::from((a, p)))),
                any::<(std::net::Ipv6Addr, u16)>()
                    .prop_map(|(a, p)| Endpoint::Addr(SocketAddr::from((a, p)))),
                ("[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}", any::<u16>())
                    .prop_map(|(h, p)| Endpoint::Host(h, p)),
            ]),
            proptest::collection::vec(arb_net(), 0..4),
            proptest::option::of(any::<u16>()),
        )
            .prop_map(
                |(pk, psk, endpoint, allowed_ips, persistent_keepalive)| Peer {
                    public_key: PrivateKey::from_bytes(pk).unwrap().public_key(),
                    preshared_key: psk.map(|b| {
                        PresharedKey::from_base64(&base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            b,
                        ))
                        .unwrap()
                    }),
                    endpoint,
                    allowed_ips,
                    persistent_keepalive,
                },
            )
    }

    fn arb_config() -> impl Strategy<Value = WgConfig> {
        (
            proptest::option::of(arb_key()),
            proptest::collection::vec(arb_net(), 0..4),
            proptest::collection::vec(any::<IpAddr>(), 0..3),
            proptest::collection::vec("[a-z]{1,8}\\.[a-z]{2,4}", 0..2),
            proptest::option::of(576u16..=65535),
            proptest::option::of(any::<u16>()),
            proptest::collection::vec(arb_peer(), 0..3),
        )
            .prop_map(|(k, addresses, dns, dns_search, mtu, listen_port, peers)| {
                WgConfig {
                    interface: Interface {
                        private_key: k.map(|b| PrivateKey::from_bytes(b).unwrap()),
                        addresses,
                        dns,
                        dns_search,
                        mtu,
                        listen_port,
                    },
                    peers,
                }
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let _ = WgConfig::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_config_like_text(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("[Interface]".to_string()),
                    Just("[Peer]".to_string()),
                    "(PrivateKey|PublicKey|Address|DNS|MTU|Endpoint|AllowedIPs|ListenPort|PresharedKey|PersistentKeepalive) ?= ?[ -~]{0,50}",
                    "[ -~]{0,40}",
                ],
                0..12,
            )
        ) {
            let _ = WgConfig::parse(&lines.join("\n"));
        }

        #[test]
        fn write_parse_round_trips(c in arb_config()) {
            let text = c.to_conf_string();
            prop_assert_eq!(WgConfig::parse(&text).unwrap(), c);
        }
    }
}

//! The helper's wire protocol: length-prefixed (u32, big endian) JSON frames carrying one
//! [`Request`] (client → helper) or one [`Response`] (helper → client, including pushed
//! [`Event`]s). The first request on a connection must be [`Request::Hello`] with
//! [`VERSION`]; any other version is refused with a message naming both.
//!
//! [`Response::Opened`] travels with two descriptors (the TUN device, then the UDP socket) as
//! `SCM_RIGHTS` ancillary data on the frame's first byte.
//!
//! Every field is checked by [`OpenRequest::validate`] before the helper acts on it; frames over
//! [`MAX_FRAME`] are refused before anything is allocated. Service tokens and keys are never
//! part of this protocol: the helper sees addresses, routes and the endpoint only.

use ipnet::IpNet;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Protocol version spoken by this build.
pub const VERSION: u32 = 1;
/// Largest frame body accepted, in bytes.
pub const MAX_FRAME: usize = 64 * 1024;
/// Smallest and largest tunnel MTU accepted.
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 1280..=9000;
/// Most addresses, routes, DNS servers or search domains in one request.
pub const MAX_LIST: usize = 64;
/// Most API servers let through the block.
pub const MAX_API: usize = 8;
/// Longest display label (service or region).
pub const MAX_LABEL: usize = 64;

/// What the network must allow: the meaning of `ferry_core::session::machine::NetworkPolicy`,
/// as it travels to the helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Policy {
    /// No kill switch: the table is removed.
    Open,
    /// Block everything but loopback, DHCP, (optionally) the LAN and the WireGuard endpoint.
    TunnelEndpointOnly {
        /// The endpoint; `None` lets no endpoint through.
        endpoint: Option<SocketAddr>,
    },
    /// Connected: only the tunnel interface (and the endpoint, loopback, DHCP, LAN).
    TunnelOnly,
}

/// A label shown by `status`: which service and region the session is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// Service name (`orbnet`, `tunnelbyte`, `wireguard`, …).
    pub service: String,
    /// Region or server name.
    pub region: String,
}

/// What the client asks the helper to set up for one tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    /// TUN interface name (`[A-Za-z0-9_.-]{1,15}`).
    pub ifname: String,
    /// Interface addresses.
    pub addresses: Vec<IpNet>,
    /// Interface MTU (within [`MTU_RANGE`]).
    pub mtu: u16,
    /// Networks routed into the tunnel.
    pub allowed_ips: Vec<IpNet>,
    /// DNS servers (empty: DNS untouched).
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// DNS search domains.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// The WireGuard endpoint (never unspecified, never port 0).
    pub endpoint: SocketAddr,
    /// Local UDP port to bind (`None`: any).
    #[serde(default)]
    pub listen_port: Option<u16>,
    /// Let LAN traffic (RFC 1918, link-local, ULA) pass the kill switch.
    #[serde(default)]
    pub allow_lan: bool,
    /// Shown by `status`.
    #[serde(default)]
    pub label: Label,
    /// The services' API servers (TCP), let through the block while reconnecting so a new
    /// session can be asked for (at most [`MAX_API`]; never loopback, which always passes).
    #[serde(default)]
    pub api: Vec<SocketAddr>,
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one short-lived message at a time
pub enum Request {
    /// Must come first.
    Hello {
        /// The client's [`VERSION`].
        version: u32,
    },
    /// Starts (or continues) the user's session: block to the endpoint, then create the TUN
    /// device, socket, routes and DNS; answered with [`Response::Opened`] and two descriptors.
    Open(OpenRequest),
    /// The tunnel's first handshake completed: block everything but the tunnel.
    Handshake,
    /// The tunnel is down for a reconnect: routes and DNS go, the block returns to the endpoint.
    Close,
    /// The user disconnected: remove routes, DNS and the block (idempotent).
    Disconnect,
    /// Ask for the helper's state.
    Status,
    /// End whatever session runs (its client is told to end cleanly) and clear any block.
    DisconnectAll,
}

/// The session's state as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// No session and no block (or only the always-require-VPN block).
    Disconnected,
    /// A tunnel is set up, no handshake yet.
    Connecting,
    /// The tunnel carries traffic.
    Connected,
    /// Between tunnels (reconnecting), or the client vanished without disconnecting.
    Blocked,
}

/// The helper's answer to [`Request::Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Session state.
    pub state: SessionState,
    /// Label of the session, if any.
    pub label: Option<Label>,
    /// The policy in force.
    pub policy: Policy,
    /// True when the kill-switch table is in the kernel.
    pub block: bool,
    /// True when a client is attached.
    pub client_attached: bool,
    /// The tunnel interface, while one is set up.
    pub interface: Option<String>,
}

/// Something the helper tells a session's client without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// `ferry disconnect` (another process) asked to end the session: end it as the user's
    /// disconnect. The helper has already cleared the block.
    DisconnectRequested,
}

/// A helper's answer (or pushed event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// Version accepted.
    Hello {
        /// The helper's [`VERSION`].
        version: u32,
    },
    /// The tunnel's descriptors follow as ancillary data: the TUN device, then the UDP socket.
    Opened {
        /// The interface name the kernel gave the device.
        ifname: String,
        /// Packets on the TUN descriptor carry a virtio-net header (offloads on).
        vnet: bool,
        /// The MTU set.
        mtu: u16,
    },
    /// Done.
    Ok,
    /// The state.
    Status(Status),
    /// Pushed, not an answer.
    Event {
        /// What happened.
        event: Event,
    },
    /// Refused or failed.
    Error {
        /// Why, for people.
        message: String,
    },
}

/// Errors of framing and validation.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// Socket I/O failed.
    #[error("helper socket: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection.
    #[error("the connection was closed")]
    Closed,
    /// A frame over [`MAX_FRAME`].
    #[error("message of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// Not one of the messages.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A field failed validation.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ProtoError {
    ProtoError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// True for a search domain made of DNS labels (letters, digits, `-`, `_`), at most 253 bytes.
pub fn valid_domain(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn plain_label(field: &'static str, s: &str) -> Result<(), ProtoError> {
    if s.len() > MAX_LABEL || s.chars().any(char::is_control) {
        return Err(invalid(field, "too long or has control characters"));
    }
    Ok(())
}

fn usable_ip(ip: IpAddr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]))
}

impl OpenRequest {
    /// Checks every field; the helper calls it before acting.
    pub fn validate(&self) -> Result<(), ProtoError> {
        if !ferry_tunnel::system::tun::valid_ifname(&self.ifname) {
            return Err(invalid("ifname", format!("{:?}", self.ifname)));
        }
        for (field, list) in [
            ("addresses", self.addresses.len()),
            ("allowed_ips", self.allowed_ips.len()),
            ("dns", self.dns.len()),
            ("dns_search", self.dns_search.len()),
        ] {
            if list > MAX_LIST {
                return Err(invalid(field, format!("more than {MAX_LIST} entries")));
            }
        }
        if self.addresses.is_empty() {
            return Err(invalid("addresses", "at least one address is needed"));
        }
        for a in &self.addresses {
            if !usable_ip(a.addr()) || a.addr().is_loopback() {
                return Err(invalid(
                    "addresses",
                    format!("{a} cannot be a tunnel address"),
                ));
            }
        }
        if self.allowed_ips.is_empty() {
            return Err(invalid("allowed_ips", "at least one network is needed"));
        }
        for n in &self.allowed_ips {
            if *n != n.trunc() {
                return Err(invalid(
                    "allowed_ips",
                    format!("{n} has host bits set (did you mean {}?)", n.trunc()),
                ));
            }
            if n.addr().is_loopback() || (n.addr().is_multicast() && n.prefix_len() > 0) {
                return Err(invalid("allowed_ips", format!("{n} cannot be routed")));
            }
        }
        if !MTU_RANGE.contains(&self.mtu) {
            return Err(invalid(
                "mtu",
                format!(
                    "{} is outside {}..={}",
                    self.mtu,
                    MTU_RANGE.start(),
                    MTU_RANGE.end()
                ),
            ));
        }
        for d in &self.dns {
            if !usable_ip(*d) {
                return Err(invalid("dns", format!("{d} is not a DNS server address")));
            }
        }
        for d in &self.dns_search {
            if !valid_domain(d) {
                return Err(invalid("dns_search", format!("{d:?} is not a domain")));
            }
        }
        let ep = self.endpoint.ip();
        if !usable_ip(ep) || ep.is_loopback() || self.endpoint.port() == 0 {
            return Err(invalid(
                "endpoint",
                format!("{} is not a usable endpoint", self.endpoint),
            ));
        }
        if self.api.len() > MAX_API {
            return Err(invalid("api", format!("more than {MAX_API} entries")));
        }
        for a in &self.api {
            if !usable_ip(a.ip()) || a.ip().is_loopback() || a.port() == 0 {
                return Err(invalid("api", format!("{a} is not an API server address")));
            }
        }
        if self.listen_port == Some(0) {
            return Err(invalid("listen_port", "0 (leave it out for any port)"));
        }
        plain_label("label.service", &self.label.service)?;
        plain_label("label.region", &self.label.region)?;
        Ok(())
    }

    /// True if IPv6 is routed into the tunnel at all.
    pub fn carries_v6(&self) -> bool {
        self.allowed_ips.iter().any(|n| matches!(n, IpNet::V6(_)))
    }
}

/// Encodes one message as a frame (length prefix and JSON).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let body = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| ProtoError::TooLarge(body.len()))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a frame body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ProtoError> {
    serde_json::from_slice(body).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// Writes one message on a connected stream socket, with `fds` attached to its first byte.
pub fn write_msg<T: Serialize>(
    sock: &impl AsRawFd,
    msg: &T,
    fds: &[RawFd],
) -> Result<(), ProtoError> {
    let frame = encode(msg)?;
    let mut sent = 0;
    while sent < frame.len() {
        let iov = [IoSlice::new(&frame[sent..])];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if sent == 0 && !fds.is_empty() {
            &rights
        } else {
            &[]
        };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(0) => return Err(ProtoError::Closed),
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(ProtoError::Io(e.into())),
        }
    }
    Ok(())
}

/// Reads frames from a connected stream socket, keeping any descriptors that arrive.
#[derive(Debug, Default)]
pub struct Reader {
    fds: Vec<OwnedFd>,
}

impl Reader {
    /// A reader with no descriptors pending.
    pub fn new() -> Self {
        Self::default()
    }

    fn fill(&mut self, sock: RawFd, buf: &mut [u8]) -> Result<(), ProtoError> {
        let mut got = 0;
        while got < buf.len() {
            let mut space = nix::cmsg_space!([RawFd; 4]);
            let mut iov = [IoSliceMut::new(&mut buf[got..])];
            let r = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC);
            let msg = match r {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ProtoError::Io(e.into())),
            };
            let n = msg.bytes;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        for fd in raw {
                            // SAFETY: the kernel just installed this descriptor for us.
                            self.fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
            }
            if n == 0 {
                return Err(ProtoError::Closed);
            }
            got += n;
        }
        Ok(())
    }

    /// Reads one message (blocking).
    pub fn read_msg<T: for<'de> Deserialize<'de>>(
        &mut self,
        sock: &impl AsRawFd,
    ) -> Result<T, ProtoError> {
        let fd = sock.as_raw_fd();
        let mut len = [0u8; 4];
        self.fill(fd, &mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(ProtoError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        self.fill(fd, &mut body)?;
        decode(&body)
    }

    /// Descriptors received so far, oldest first (taken out of the reader).
    pub fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::net::UnixStream;

    pub(crate) fn open_req() -> OpenRequest {
        OpenRequest {
            ifname: "ferry0".into(),
            addresses: vec![
                "10.64.0.2/32".parse().unwrap(),
                "fd00::2/128".parse().unwrap(),
            ],
            mtu: 1420,
            allowed_ips: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            dns: vec!["10.64.0.1".parse().unwrap()],
            dns_search: vec!["lab.example".into()],
            endpoint: "198.18.0.2:51820".parse().unwrap(),
            listen_port: None,
            allow_lan: false,
            label: Label {
                service: "orbnet".into(),
                region: "lab-1".into(),
            },
            api: vec!["203.0.113.7:443".parse().unwrap()],
        }
    }

    #[test]
    fn every_message_round_trips() {
        let reqs = vec![
            Request::Hello { version: VERSION },
            Request::Open(open_req()),
            Request::Handshake,
            Request::Close,
            Request::Disconnect,
            Request::Status,
            Request::DisconnectAll,
        ];
        let resps = vec![
            Response::Hello { version: VERSION },
            Response::Opened {
                ifname: "ferry0".into(),
                vnet: true,
                mtu: 1420,
            },
            Response::Ok,
            Response::Status(Status {
                state: SessionState::Connected,
                label: Some(open_req().label),
                policy: Policy::TunnelEndpointOnly {
                    endpoint: Some("198.18.0.2:51820".parse().unwrap()),
                },
                block: true,
                client_attached: true,
                interface: Some("ferry0".into()),
            }),
            Response::Event {
                event: Event::DisconnectRequested,
            },
            Response::Error {
                message: "no".into(),
            },
        ];
        let (a, b) = UnixStream::pair().unwrap();
        let mut r = Reader::new();
        for q in &reqs {
            write_msg(&a, q, &[]).unwrap();
            assert_eq!(&r.read_msg::<Request>(&b).unwrap(), q);
        }
        for p in &resps {
            write_msg(&b, p, &[]).unwrap();
            assert_eq!(&r.read_msg::<Response>(&a).unwrap(), p);
        }
        assert!(r.take_fds().is_empty());
    }

    #[test]
    fn descriptors_travel_with_the_frame() {
        let (a, b) = UnixStream::pair().unwrap();
        let (x, mut y) = UnixStream::pair().unwrap();
        write_msg(&a, &Response::Ok, &[x.as_raw_fd()]).unwrap();
        drop(x);
        let mut r = Reader::new();
        assert_eq!(r.read_msg::<Response>(&b).unwrap(), Response::Ok);
        let fds = r.take_fds();
        assert_eq!(fds.len(), 1);
        let mut x2 = UnixStream::from(fds.into_iter().next().unwrap());
        use std::io::{Read, Write};
        x2.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        y.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        use std::io::Write;
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&((MAX_FRAME as u32) + 1).to_be_bytes())
            .unwrap();
        let mut r = Reader::new();
        assert!(matches!(
            r.read_msg::<Request>(&b),
            Err(ProtoError::TooLarge(_))
        ));
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&5u32.to_be_bytes()).unwrap();
        a.write_all(b"{nope").unwrap();
        assert!(matches!(
            r.read_msg::<Request>(&b),
            Err(ProtoError::Malformed(_))
        ));
        drop(a);
        assert!(matches!(r.read_msg::<Request>(&b), Err(ProtoError::Closed)));
        // Unknown fields of an open request and unknown kinds are refused.
        let text = serde_json::to_string(&Request::Open(open_req()))
            .unwrap()
            .replace("\"allow_lan\"", "\"token\":\"x\",\"allow_lan\"");
        assert!(decode::<Request>(text.as_bytes()).is_err(), "{text}");
        assert!(decode::<Request>(br#"{"request":"format_disk"}"#).is_err());
    }

    #[test]
    fn validation_refuses_each_bad_field() {
        assert!(open_req().validate().is_ok());
        type Edit = Box<dyn Fn(&mut OpenRequest)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("ifname", Box::new(|r| r.ifname = "bad name".into())),
            ("ifname", Box::new(|r| r.ifname = "x".repeat(16))),
            ("ifname", Box::new(|r| r.ifname = "a;rm".into())),
            ("addresses", Box::new(|r| r.addresses.clear())),
            (
                "addresses",
                Box::new(|r| r.addresses = vec!["0.0.0.0/32".parse().unwrap()]),
            ),
            (
                "allowed_ips",
                Box::new(|r| r.allowed_ips = vec!["10.0.0.1/8".parse().unwrap()]),
            ),
            (
                "allowed_ips",
                Box::new(|r| r.allowed_ips = vec!["127.0.0.0/8".parse().unwrap()]),
            ),
            ("mtu", Box::new(|r| r.mtu = 500)),
            ("mtu", Box::new(|r| r.mtu = 65000)),
            (
                "dns",
                Box::new(|r| r.dns = vec!["0.0.0.0".parse().unwrap()]),
            ),
            (
                "dns",
                Box::new(|r| r.dns = vec!["ff02::1".parse().unwrap()]),
            ),
            (
                "dns_search",
                Box::new(|r| r.dns_search = vec!["a b".into()]),
            ),
            (
                "dns_search",
                Box::new(|r| r.dns_search = vec!["x\nnameserver 1.1.1.1".into()]),
            ),
            (
                "endpoint",
                Box::new(|r| r.endpoint = "0.0.0.0:51820".parse().unwrap()),
            ),
            (
                "endpoint",
                Box::new(|r| r.endpoint = "[::]:51820".parse().unwrap()),
            ),
            (
                "endpoint",
                Box::new(|r| r.endpoint = "198.18.0.2:0".parse().unwrap()),
            ),
            ("listen_port", Box::new(|r| r.listen_port = Some(0))),
            (
                "api",
                Box::new(|r| r.api = vec!["127.0.0.1:443".parse().unwrap()]),
            ),
            (
                "api",
                Box::new(|r| r.api = vec!["203.0.113.7:443".parse().unwrap(); MAX_API + 1]),
            ),
            (
                "label.service",
                Box::new(|r| r.label.service = "a\u{7}".into()),
            ),
            (
                "label.region",
                Box::new(|r| r.label.region = "r".repeat(65)),
            ),
            (
                "dns",
                Box::new(|r| r.dns = vec!["10.0.0.1".parse().unwrap(); MAX_LIST + 1]),
            ),
        ];
        for (field, edit) in cases {
            let mut r = open_req();
            edit(&mut r);
            match r.validate() {
                Err(ProtoError::Invalid { field: f, .. }) => assert_eq!(f, field, "{r:?}"),
                other => panic!("{field}: {other:?} for {r:?}"),
            }
        }
        // Invalid prefixes do not even parse.
        let text = serde_json::to_string(&Request::Open(open_req()))
            .unwrap()
            .replace("10.64.0.2/32", "10.64.0.2/33");
        assert!(decode::<Request>(text.as_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Request>(&bytes);
            let _ = decode::<Response>(&bytes);
        }

        #[test]
        fn mutated_open_requests_decode_or_fail_cleanly(pos in 0usize..400, byte in any::<u8>()) {
            let mut text = serde_json::to_vec(&Request::Open(open_req())).unwrap();
            let i = pos % text.len();
            text[i] = byte;
            if let Ok(Request::Open(r)) = decode::<Request>(&text) {
                let _ = r.validate();
            }
        }
    }
}

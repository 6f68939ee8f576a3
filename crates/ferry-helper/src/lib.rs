//! Ferry's privileged helper for system mode, and what clients need to talk to it.
//!
//! The helper (`ferry-helper`, run as root by systemd) owns everything privileged: the TUN
//! device, the fwmarked UDP socket, routes, rules, DNS and the nftables kill switch. It hands
//! the TUN device and the socket to the client over the Unix socket (`SCM_RIGHTS`), so the data
//! plane (boringtun, the meter) stays in the unprivileged user's process. Service tokens and
//! keys never reach it.
//!
//! - [`proto`]: the wire protocol (the only thing clients and helper share).
//! - [`client`]: the client side.
//! - [`firewall`]: the kill switch, rendered as data.
//! - [`server`], [`peer`], [`journal`]: the helper itself.

pub mod client;
pub mod firewall;
pub mod journal;
pub mod peer;
pub mod proto;
pub mod server;

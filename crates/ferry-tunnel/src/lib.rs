//! Ferry's WireGuard data plane on boringtun: peer loop, system mode, app mode, exit node.

pub mod pipe;
pub mod keys;
pub mod wgconf;
pub mod netstack;
pub mod exit;
pub mod peer;
pub mod system;
pub mod tunnel;
pub mod error;
pub mod proxy;

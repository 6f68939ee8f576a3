//! Ferry's WireGuard data plane on boringtun: peer loop, system mode, app mode, exit node.

pub mod error;
pub mod exit;
pub mod keys;
pub mod netstack;
pub mod peer;
pub mod pipe;
pub mod proxy;
pub mod system;
pub mod tunnel;
pub mod wgconf;

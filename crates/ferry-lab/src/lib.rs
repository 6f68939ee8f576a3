//! A local stand-in for OrbNET, tunnelbyte and NeoSC with a real WireGuard exit node.
//!
//! One process serves the three vendor APIs as their documentation describes them (status codes,
//! error envelopes, field names, timing rules), a control API for tests under `/_lab`, and a
//! WireGuard exit node on a UDP port. Time inside the lab runs on [`clock::LabClock`], which tests
//! can move forward.

pub mod clock;
pub mod control;
pub mod ctx;
pub mod exit;
pub mod exit_key;
pub mod faults;
pub mod neosc;
pub mod orbnet;
pub mod reqlog;
pub mod server;
pub mod tunnelbyte;

pub use server::{Egress, Lab, LabConfig, LabError, LabUrls};

//! Metering: OrbNET credits (heartbeats) and tunnelbyte quota and cost (status polls). Each has
//! pure accounting plus a small async driver. (NeoSC sessions: [`crate::workspaces`].)

pub mod caps;
pub mod credits;
pub mod credits_driver;
pub mod quota;

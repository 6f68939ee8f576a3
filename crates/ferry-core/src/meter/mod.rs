//! Metering: OrbNET credits (heartbeats), tunnelbyte quota and cost (status polls), NeoSC
//! workspace sessions (refresh loop). Each has pure accounting plus a small async driver.

pub mod credits;
pub mod credits_driver;
pub mod quota;
pub mod workspaces;

//! The session supervisor: a pure state machine ([`machine`]) and the task that executes its
//! actions and publishes one [`event::SessionEvent`] stream.

pub mod adapters;
pub mod event;
pub mod instance;
pub mod logind;
pub mod machine;
pub mod network;
pub mod orbnet;
pub mod ports;
pub mod recover;
pub mod sleep;
pub mod supervisor;
pub mod tunnelbyte;
pub mod wg_tunnels;

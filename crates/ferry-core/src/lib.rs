//! Everything a headless Ferry client needs: service clients, metering, supervisor, store, secrets.
pub mod app;
pub mod clock;
pub mod diagnostics;
pub mod helper;
pub mod http;
pub mod meter;
pub mod paths;
pub mod secrets;
pub mod services;
pub mod session;
pub mod store;
pub mod timefmt;
pub mod workspaces;

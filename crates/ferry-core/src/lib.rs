//! Everything a headless Ferry client needs: service clients, metering, supervisor, store, secrets.
pub mod clock;
pub mod meter;
pub mod session;
pub mod http;
pub mod paths;
pub mod secrets;
pub mod services;
pub mod store;
pub mod timefmt;

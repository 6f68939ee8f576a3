//! Everything a headless Ferry client needs: service clients, metering, supervisor, store, secrets.
pub mod clock;
pub mod meter;
pub mod session;

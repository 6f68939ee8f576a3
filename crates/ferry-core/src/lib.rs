//! Everything a headless Ferry client needs: service clients, metering, supervisor, store, secrets.

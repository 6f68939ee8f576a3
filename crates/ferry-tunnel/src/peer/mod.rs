//! The WireGuard peer: a pure engine around boringtun and the async loop that drives it.

pub mod engine;
pub mod run;

#[cfg(all(test, feature = "mock-clock"))]
mod clock_tests;

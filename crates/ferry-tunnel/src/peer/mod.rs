//! The WireGuard peer: a pure engine around boringtun, the async loop that drives it over a
//! packet pipe, and system mode's threaded, batched data plane.

pub mod batch;
pub mod dataplane;
pub mod engine;
pub mod run;
pub mod sockaddr;
pub mod wake;

#[cfg(all(test, feature = "mock-clock"))]
mod clock_tests;

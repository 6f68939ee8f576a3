//! Helpers shared by the end-to-end tests.

pub mod cli;
pub mod history;
pub mod lab;
pub mod netns;

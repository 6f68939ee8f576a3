//! Ferry's desktop shell: a thin Tauri layer over the core's facade, [`ferry_core::app::App`].
//!
//! The window, the tray and notifications only listen to the engine's event stream and send
//! commands; the decisions (tray menu contents, which notification to show) are pure functions in
//! [`tray_model`], [`observe`] and [`notify_policy`].

pub mod commands;
pub mod contract;
pub mod demo;
pub mod format;
pub mod notify_policy;
pub mod observe;
pub mod shell;
pub mod tray;
pub mod tray_host;
pub mod tray_model;

pub use shell::{prepare_webkit_env, run, LaunchOptions};

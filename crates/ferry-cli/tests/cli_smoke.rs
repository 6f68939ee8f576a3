//! The `ferry` binary itself. Having an integration test here also makes `cargo test` build
//! `target/<profile>/ferry`, which the end-to-end tests in `tests/` run as a separate process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn help_lists_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "lab",
        "up",
        "login",
        "logout",
        "regions",
        "connect",
        "usage",
        "workspaces",
        "sessions",
        "history",
    ] {
        assert!(text.contains(sub), "`{sub}` missing from:\n{text}");
    }
}

#[test]
fn an_unknown_subcommand_is_a_usage_error_not_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

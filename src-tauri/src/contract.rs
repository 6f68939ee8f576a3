//! The IPC contract of the desktop shell: the command table and the TypeScript module
//! `ui/src/contract.gen.ts`, generated from the core's contract types
//! ([`ferry_core::app::contract`]) and the tables below; a test fails when the two differ.

pub use ferry_core::app::contract::*;
pub use ferry_core::app::insight::{InsightView, MonthForecast, SpendRow};
pub use ferry_core::meter::caps::Budget;
use ts_rs::TS;

/// One command: name, arguments (name and TypeScript type), TypeScript result type.
pub type CommandSig = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Commands: name, arguments (name and TypeScript type), TypeScript result type.
pub const COMMANDS: &[CommandSig] = &[
    ("get_snapshot", &[], "Snapshot"),
    ("sign_in", &[("request", "SignInRequest")], "SignInOutcome"),
    ("sign_out", &[("service", "Service")], "Array<AccountView>"),
    ("list_regions", &[], "Array<RegionGroup>"),
    (
        "connect",
        &[("request", "ConnectRequest")],
        "ConnectionView",
    ),
    ("disconnect", &[], "ConnectionView"),
    ("list_workspaces", &[], "WorkspacesView"),
    (
        "launch_workspace",
        &[("id", "string")],
        "WorkspaceLaunchView",
    ),
    ("stop_workspace", &[("id", "string")], "WorkspacesView"),
    (
        "disconnect_workspace_session",
        &[("id", "string")],
        "WorkspacesView",
    ),
    ("get_history", &[], "HistoryView"),
    ("get_insight", &[], "InsightView"),
    ("open_browser", &[], "string"),
    ("restart_in_demo", &[], "null"),
    ("get_diagnostics", &[], "string"),
    ("get_budget", &[], "Budget"),
    ("save_budget", &[("budget", "Budget")], "Budget"),
    ("export_history_csv", &[], "string"),
    ("save_settings", &[("settings", "Settings")], "Settings"),
    ("quit_app", &[], "null"),
    ("minimize_window", &[], "null"),
];

/// Events of the shell itself (not the core's stream): name and TypeScript payload type.
pub const SHELL_EVENTS: &[(&str, &str)] = &[(crate::shell::CLOSE_ASKED, "null")];

/// The TypeScript module `ui/src/contract.gen.ts`, generated from the types and tables above.
pub fn typescript() -> String {
    let cfg = ts_rs::Config::new().with_large_int("number");
    let decls = [
        Service::decl(&cfg),
        Phase::decl(&cfg),
        TunnelMode::decl(&cfg),
        RegionRef::decl(&cfg),
        RegionView::decl(&cfg),
        RegionGroup::decl(&cfg),
        ErrorView::decl(&cfg),
        ConnectionView::decl(&cfg),
        QuotaUnit::decl(&cfg),
        QuotaView::decl(&cfg),
        MeterView::decl(&cfg),
        Sample::decl(&cfg),
        CapView::decl(&cfg),
        LiveView::decl(&cfg),
        AccountView::decl(&cfg),
        SignInRequest::decl(&cfg),
        SignInOutcome::decl(&cfg),
        ConnectRequest::decl(&cfg),
        WorkspaceView::decl(&cfg),
        WorkspaceSessionView::decl(&cfg),
        WorkspacesView::decl(&cfg),
        WorkspaceLaunchView::decl(&cfg),
        HistoryRow::decl(&cfg),
        DayTotal::decl(&cfg),
        HistoryView::decl(&cfg),
        SpendRow::decl(&cfg),
        MonthForecast::decl(&cfg),
        InsightView::decl(&cfg),
        Budget::decl(&cfg),
        NotifySettings::decl(&cfg),
        BaseUrls::decl(&cfg),
        Settings::decl(&cfg),
        Snapshot::decl(&cfg),
        WarningKind::decl(&cfg),
        WarningView::decl(&cfg),
        CommandError::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from ferry-core app::contract and src-tauri/src/contract.rs by its contract test; do not edit.\n\
         // Regenerate: FERRY_UPDATE_CONTRACT=1 cargo test -p ferry-desktop contract\n\n",
    );
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out.push_str(
        "/** Every command: its arguments and its result. */\nexport interface Commands {\n",
    );
    for (name, args, ret) in COMMANDS {
        let args: Vec<String> = args.iter().map(|(a, t)| format!("{a}: {t}")).collect();
        let args = if args.is_empty() {
            "Record<string, never>".to_string()
        } else {
            format!("{{ {} }}", args.join("; "))
        };
        out.push_str(&format!("  {name}: {{ args: {args}; result: {ret} }};\n"));
    }
    out.push_str("}\n\n/** Every event: its payload. */\nexport interface Events {\n");
    for (name, payload) in EVENTS.iter().chain(SHELL_EVENTS) {
        out.push_str(&format!("  \"{name}\": {payload};\n"));
    }
    out.push_str(
        "}\n\n/** Command names, as registered in Rust. */\nexport const COMMAND_NAMES = [\n",
    );
    for (name, _, _) in COMMANDS {
        out.push_str(&format!("  \"{name}\",\n"));
    }
    out.push_str(
        "] as const;\n\n/** Event names, as emitted by Rust. */\nexport const EVENT_NAMES = [\n",
    );
    for (name, _) in EVENTS.iter().chain(SHELL_EVENTS) {
        out.push_str(&format!("  \"{name}\",\n"));
    }
    out.push_str("] as const;\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_typescript_matches_committed_file() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/contract.gen.ts");
        let generated = typescript();
        if std::env::var_os("FERRY_UPDATE_CONTRACT").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "ui/src/contract.gen.ts is out of date with src-tauri/src/contract.rs; \
             run FERRY_UPDATE_CONTRACT=1 cargo test -p ferry-desktop contract"
        );
    }
}

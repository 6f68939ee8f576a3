// Generated from ferry-core app::contract and src-tauri/src/contract.rs by its contract test; do not edit.
// Regenerate: FERRY_UPDATE_CONTRACT=1 cargo test -p ferry-desktop contract

export type Service = "orbnet" | "tunnelbyte" | "neosc";

export type Phase = "disconnected" | "connecting" | "connected" | "reconnecting" | "disconnecting" | "error";

export type TunnelMode = "app" | "all_traffic";

export type RegionRef = { 
/**
 * The service the region belongs to.
 */
service: Service, 
/**
 * The service's identifier (OrbNET server id, tunnelbyte region code).
 */
id: string, };

export type RegionView = { 
/**
 * Where it is.
 */
ref: RegionRef, 
/**
 * Shown name: the city (OrbNET) or the region code (tunnelbyte).
 */
label: string, 
/**
 * Country, when the service says.
 */
country: string | null, 
/**
 * Number of exit nodes, when the service says (tunnelbyte).
 */
nodes: number | null, 
/**
 * False when the service reported it unavailable.
 */
available: boolean, 
/**
 * Why it is unavailable and what to pick instead, in words.
 */
note: string | null, };

export type RegionGroup = { 
/**
 * The service.
 */
service: Service, 
/**
 * Its regions, in the service's order.
 */
regions: Array<RegionView>, 
/**
 * Set when the list could not be loaded.
 */
error: string | null, };

export type ErrorView = { 
/**
 * Machine-readable kind (e.g. `credits_depleted`).
 */
code: string, 
/**
 * What happened, in words.
 */
message: string, 
/**
 * What the user can do about it.
 */
action: string, 
/**
 * Regions the service suggests instead (a 503 with `available`), to offer as buttons.
 */
alternatives: Array<RegionRef>, };

export type ConnectionView = { 
/**
 * Current phase.
 */
phase: Phase, 
/**
 * The region in use or being connected to.
 */
region: RegionRef | null, 
/**
 * Shown name of that region.
 */
region_label: string | null, 
/**
 * Tunnel mode in use.
 */
mode: TunnelMode, 
/**
 * Set in the Error phase (and kept while reconnecting).
 */
error: ErrorView | null, 
/**
 * When the current phase began (unix ms).
 */
since_ms: number, };

export type QuotaUnit = "bytes" | "seconds";

export type QuotaView = { 
/**
 * What is counted, e.g. "Data this month" or "Time today".
 */
label: string, 
/**
 * `bytes` or `seconds`.
 */
unit: QuotaUnit, 
/**
 * Used so far.
 */
used: number, 
/**
 * The limit; `None` when unlimited.
 */
limit: number | null, 
/**
 * When the window resets (unix ms), when known.
 */
resets_at_ms: number | null, };

export type MeterView = { "kind": "credits", 
/**
 * Credits left on the account.
 */
left: number, 
/**
 * Credits per minute while connected.
 */
burn_per_minute: number, 
/**
 * Credits spent in this session.
 */
spent: number, } | { "kind": "quota", 
/**
 * Cost so far in millicents (paid tier), `None` when free.
 */
cost_millicents: number | null, 
/**
 * The cost's currency as the service names it (e.g. `eur`), when known.
 */
currency: string | null, 
/**
 * The quota windows.
 */
quotas: Array<QuotaView>, };

export type Sample = { 
/**
 * Time (unix ms).
 */
at_ms: number, 
/**
 * Credits left (OrbNET) or cost in millicents (tunnelbyte).
 */
meter: number, 
/**
 * Total bytes in + out so far.
 */
bytes: number, };

export type CapView = { 
/**
 * `session`, `day` or `month`.
 */
scope: string, 
/**
 * Its limit (credits, or millicents of the service's currency).
 */
limit: number, 
/**
 * What was left of it when the session started.
 */
left_at_start: number, 
/**
 * `credits` or `millicents`.
 */
unit: string, 
/**
 * When its window resets (unix ms): day and month caps.
 */
resets_at_ms: number | null, };

export type LiveView = { 
/**
 * Session start (unix ms).
 */
started_ms: number, 
/**
 * Time of these figures (unix ms).
 */
at_ms: number, 
/**
 * Exit IP as seen by the service, when known.
 */
exit_ip: string | null, 
/**
 * App mode: the local SOCKS5 proxy (`host:port`) that apps point at; `None` when all
 * traffic is routed.
 */
proxy: string | null, 
/**
 * App mode: the local HTTP proxy (CONNECT and plain `http://`), when it runs.
 */
http_proxy: string | null, 
/**
 * Latency to the exit in ms (the last WireGuard handshake's round trip), once measured.
 */
latency_ms: number | null, 
/**
 * Bytes received.
 */
bytes_in: number, 
/**
 * Bytes sent.
 */
bytes_out: number, 
/**
 * Current receive rate, bytes per second.
 */
rate_in: number, 
/**
 * Current send rate, bytes per second.
 */
rate_out: number, 
/**
 * Credits or quota/cost.
 */
meter: MeterView, 
/**
 * Chart points over the session (bounded).
 */
samples: Array<Sample>, 
/**
 * The spend cap closest to its limit for this session, if any is set.
 */
cap: CapView | null, };

export type AccountView = { 
/**
 * The service.
 */
service: Service, 
/**
 * True when a token is in the keyring.
 */
signed_in: boolean, 
/**
 * Who: the email, or the tunnelbyte tier.
 */
label: string | null, 
/**
 * OrbNET credits on the account, when known.
 */
credits: number | null, };

export type SignInRequest = { "service": "orbnet", 
/**
 * Account email.
 */
email: string, 
/**
 * Password (sent once, never stored).
 */
password: string, 
/**
 * Six-digit code, on the second step.
 */
totp: string | null, } | { "service": "tunnelbyte", 
/**
 * The API token.
 */
token: string | null, } | { "service": "neosc", 
/**
 * The NeoSC server's API address (self-hosted); `None` keeps the one in settings.
 */
server: string | null, 
/**
 * Account email.
 */
email: string, 
/**
 * Password (sent once, never stored).
 */
password: string, };

export type SignInOutcome = { "outcome": "signed_in", 
/**
 * The account.
 */
account: AccountView, } | { "outcome": "needs_two_factor" };

export type ConnectRequest = { 
/**
 * Where to.
 */
region: RegionRef, 
/**
 * App mode or all traffic.
 */
mode: TunnelMode, };

export type WorkspaceView = { 
/**
 * NeoSC id.
 */
id: string, 
/**
 * Shown name.
 */
name: string, 
/**
 * State as NeoSC reports it (e.g. `running`, `stopped`).
 */
state: string, };

export type WorkspaceSessionView = { 
/**
 * NeoSC id.
 */
id: string, 
/**
 * Name of its workspace.
 */
workspace: string, 
/**
 * Session type (e.g. `desktop`, `browser`).
 */
kind: string, 
/**
 * Start (unix ms).
 */
started_ms: number, 
/**
 * End (unix ms) when ended.
 */
ended_ms: number | null, 
/**
 * True while active.
 */
active: boolean, 
/**
 * Tunnel status as reported.
 */
tunnel: string, 
/**
 * Whether MFA was satisfied.
 */
mfa: boolean, };

export type WorkspacesView = { 
/**
 * Workspaces.
 */
workspaces: Array<WorkspaceView>, 
/**
 * Sessions, active first, then most recent first.
 */
sessions: Array<WorkspaceSessionView>, 
/**
 * When this was fetched (unix ms).
 */
refreshed_ms: number, };

export type WorkspaceLaunchView = { 
/**
 * The workspaces and sessions after the launch.
 */
workspaces: WorkspacesView, 
/**
 * The address the front end opens in the default browser (`None`: the server gave no
 * viewer the client may open).
 */
open_url: string | null, };

export type HistoryRow = { 
/**
 * Local id.
 */
id: string, 
/**
 * The service.
 */
service: Service, 
/**
 * Region shown name.
 */
region: string, 
/**
 * The region it names, so the window can show the region's current name.
 */
region_ref: RegionRef | null, 
/**
 * Start (unix ms).
 */
started_ms: number, 
/**
 * Duration in seconds (so far, if still open).
 */
duration_s: number, 
/**
 * OrbNET credits used.
 */
credits_used: number | null, 
/**
 * tunnelbyte cost in millicents.
 */
cost_millicents: number | null, 
/**
 * The cost's currency as the service names it (e.g. `eur`), when known.
 */
currency: string | null, 
/**
 * Bytes in + out.
 */
bytes: number, 
/**
 * Why it ended, as a code (`user_initiated`, `credits_depleted`, ...); `None` while open.
 */
end_reason: string | null, 
/**
 * Why it ended, in words ("Credits ran out", "Ended by the server"); `None` while open.
 */
end_label: string | null, };

export type DayTotal = { 
/**
 * `YYYY-MM-DD`.
 */
day: string, 
/**
 * Number of sessions.
 */
sessions: number, 
/**
 * Seconds connected.
 */
duration_s: number, 
/**
 * Credits used.
 */
credits_used: number, 
/**
 * Cost in millicents.
 */
cost_millicents: number, 
/**
 * Bytes.
 */
bytes: number, };

export type HistoryView = { 
/**
 * Sessions, newest first.
 */
rows: Array<HistoryRow>, 
/**
 * Totals per day, newest first.
 */
days: Array<DayTotal>, 
/**
 * The currency of the costs (the newest row's), when known.
 */
currency: string | null, };

export type SpendRow = { 
/**
 * `YYYY-MM-DD` for a day; `service:region` for a region.
 */
key: string, 
/**
 * What to show: the day, or the region's name.
 */
label: string, 
/**
 * The service, for a region row (`None` for a day, which sums every service).
 */
service: Service | null, 
/**
 * The region to connect to again, for a region row whose location names one.
 */
region: RegionRef | null, 
/**
 * Sessions started in the group.
 */
sessions: number, 
/**
 * Seconds connected.
 */
duration_s: number, 
/**
 * OrbNET credits used.
 */
credits: number, 
/**
 * tunnelbyte cost in millicents of `currency`.
 */
cost_millicents: number, 
/**
 * The cost's currency as the service names it (e.g. `eur`), when known.
 */
currency: string | null, 
/**
 * Bytes in + out.
 */
bytes: number, 
/**
 * Measured OrbNET rate: credits per connected minute (a region row with ≥ 1 min of data).
 */
credits_per_minute: number | null, 
/**
 * Measured tunnelbyte cost per GiB moved, in millicents (≥ 1 MiB of data).
 */
millicents_per_gib: number | null, 
/**
 * Measured tunnelbyte cost per connected hour, in millicents (≥ 1 min of data).
 */
millicents_per_hour: number | null, };

export type MonthForecast = { 
/**
 * The service.
 */
service: Service, 
/**
 * `YYYY-MM` (local time).
 */
month: string, 
/**
 * Credits used so far this month (OrbNET).
 */
spent_credits: number, 
/**
 * Money spent so far this month, in millicents (tunnelbyte).
 */
spent_millicents: number, 
/**
 * The money's currency, when known.
 */
currency: string | null, 
/**
 * Projected month total in credits: spent so far ÷ elapsed share of the month.
 */
projected_credits: number, 
/**
 * Projected month total in millicents.
 */
projected_millicents: number, 
/**
 * Days of the month elapsed (fractional, local time).
 */
days_elapsed: number, 
/**
 * Days in the month.
 */
days_in_month: number, };

export type InsightView = { 
/**
 * Per local day, oldest first (chart order).
 */
by_day: Array<SpendRow>, 
/**
 * Per service and region, most spent first.
 */
by_region: Array<SpendRow>, 
/**
 * Per service with spend this month.
 */
month: Array<MonthForecast>, 
/**
 * Per service, the region with the lowest measured rate (OrbNET: credits per minute;
 * tunnelbyte: cost per GiB, else per hour), as a `by_region` key.
 */
cheapest: Array<string>, 
/**
 * The same regions as references the region picker can mark.
 */
cheapest_regions: Array<RegionRef>, };

export type Budget = { 
/**
 * OrbNET credits per session.
 */
session_credits: number | null, 
/**
 * OrbNET credits per local day.
 */
day_credits: number | null, 
/**
 * OrbNET credits per local calendar month.
 */
month_credits: number | null, 
/**
 * tunnelbyte money per session, in millicents of the service's currency.
 */
session_millicents: number | null, 
/**
 * tunnelbyte money per local day, in millicents.
 */
day_millicents: number | null, 
/**
 * tunnelbyte money per local calendar month, in millicents.
 */
month_millicents: number | null, };

export type NotifySettings = { 
/**
 * Credits low (the core's warnings, at each of `credit_warn_minutes`).
 */
credits_low: boolean, 
/**
 * Credits depleted.
 */
credits_depleted: boolean, 
/**
 * Quota at 80 %, 95 % and exceeded.
 */
quota: boolean, 
/**
 * Session ended by the server.
 */
session_ended: boolean, 
/**
 * Connection lost and restored.
 */
connection: boolean, 
/**
 * A workspace session ended elsewhere.
 */
workspace_ended: boolean, 
/**
 * Minutes of OrbNET credit left at which to warn, e.g. `[10, 2]` (the same in the CLI).
 */
credit_warn_minutes: Array<number>, };

export type BaseUrls = { 
/**
 * OrbNET API base.
 */
orbnet: string, 
/**
 * tunnelbyte API base.
 */
tunnelbyte: string, 
/**
 * NeoSC API base (self-hosted: asked at sign-in; empty until then).
 */
neosc: string, };

export type Settings = { 
/**
 * Notifications.
 */
notify: NotifySettings, 
/**
 * Start hidden in the tray.
 */
start_minimized: boolean, 
/**
 * Start with the desktop session.
 */
launch_at_login: boolean, 
/**
 * Closing the window hides it to the tray instead of quitting.
 */
close_to_tray: boolean, 
/**
 * Mode preselected for Connect.
 */
default_mode: TunnelMode, 
/**
 * Service base URLs.
 */
base_urls: BaseUrls, 
/**
 * While connected in app mode, point the desktop's proxy settings (GNOME) at Ferry.
 */
desktop_proxy: boolean, 
/**
 * In system mode, let the local network (printers, file shares) through the kill switch.
 */
allow_lan: boolean, };

export type Snapshot = { 
/**
 * Sign-in state per service.
 */
accounts: Array<AccountView>, 
/**
 * The connection.
 */
connection: ConnectionView, 
/**
 * Live figures while connected.
 */
live: LiveView | null, 
/**
 * The last region chosen (remembered).
 */
last_region: RegionRef | null, 
/**
 * Settings.
 */
settings: Settings, 
/**
 * True when running on the in-process lab.
 */
demo: boolean, 
/**
 * App version.
 */
version: string, };

export type WarningKind = "credits_low" | "quota_high" | "cap_near" | "cap_stop";

export type WarningView = { 
/**
 * What it is about.
 */
kind: WarningKind, 
/**
 * The threshold crossed: minutes left (credits) or percent used (quota).
 */
threshold: number, 
/**
 * What it says, in words.
 */
message: string, 
/**
 * When the quota window resets (unix ms), when known.
 */
resets_at_ms: number | null, };

export type CommandError = { 
/**
 * Machine-readable kind (`invalid_input`, `not_signed_in`, `service`, `network`, ...).
 */
code: string, 
/**
 * Explanation in words, safe to show.
 */
message: string, };

/** Every command: its arguments and its result. */
export interface Commands {
  get_snapshot: { args: Record<string, never>; result: Snapshot };
  sign_in: { args: { request: SignInRequest }; result: SignInOutcome };
  sign_out: { args: { service: Service }; result: Array<AccountView> };
  list_regions: { args: Record<string, never>; result: Array<RegionGroup> };
  connect: { args: { request: ConnectRequest }; result: ConnectionView };
  disconnect: { args: Record<string, never>; result: ConnectionView };
  list_workspaces: { args: Record<string, never>; result: WorkspacesView };
  launch_workspace: { args: { id: string }; result: WorkspaceLaunchView };
  stop_workspace: { args: { id: string }; result: WorkspacesView };
  disconnect_workspace_session: { args: { id: string }; result: WorkspacesView };
  get_history: { args: Record<string, never>; result: HistoryView };
  get_insight: { args: Record<string, never>; result: InsightView };
  open_browser: { args: Record<string, never>; result: string };
  restart_in_demo: { args: Record<string, never>; result: null };
  get_diagnostics: { args: Record<string, never>; result: string };
  get_budget: { args: Record<string, never>; result: Budget };
  save_budget: { args: { budget: Budget }; result: Budget };
  export_history_csv: { args: Record<string, never>; result: string };
  save_settings: { args: { settings: Settings }; result: Settings };
  quit_app: { args: Record<string, never>; result: null };
  minimize_window: { args: Record<string, never>; result: null };
}

/** Every event: its payload. */
export interface Events {
  "ferry:connection": ConnectionView;
  "ferry:live": LiveView | null;
  "ferry:accounts": Array<AccountView>;
  "ferry:workspaces": WorkspacesView;
  "ferry:history": HistoryView;
  "ferry:settings": Settings;
  "ferry:regions": Array<RegionGroup>;
  "ferry:warning": WarningView;
  "ferry:close-asked": null;
}

/** Command names, as registered in Rust. */
export const COMMAND_NAMES = [
  "get_snapshot",
  "sign_in",
  "sign_out",
  "list_regions",
  "connect",
  "disconnect",
  "list_workspaces",
  "launch_workspace",
  "stop_workspace",
  "disconnect_workspace_session",
  "get_history",
  "get_insight",
  "open_browser",
  "restart_in_demo",
  "get_diagnostics",
  "get_budget",
  "save_budget",
  "export_history_csv",
  "save_settings",
  "quit_app",
  "minimize_window",
] as const;

/** Event names, as emitted by Rust. */
export const EVENT_NAMES = [
  "ferry:connection",
  "ferry:live",
  "ferry:accounts",
  "ferry:workspaces",
  "ferry:history",
  "ferry:settings",
  "ferry:regions",
  "ferry:warning",
  "ferry:close-asked",
] as const;

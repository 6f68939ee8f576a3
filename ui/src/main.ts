// Ferry's window: five screens over the typed contract. State lives in Rust; this file renders it.
import { call, on } from "./api";
import type {
  AccountView,
  Budget,
  Commands,
  ConnectionView,
  HistoryView,
  InsightView,
  LiveView,
  RegionGroup,
  Service,
  Settings,
  Snapshot,
  TunnelMode,
  WorkspacesView,
} from "./contract.gen";
import { barChart } from "./chart";
import { h, replace, svg } from "./dom";
import * as fmt from "./format";
import * as spend from "./spend";
import * as view from "./view";

type Screen = "connect" | "workspaces" | "history" | "accounts" | "settings";
const SCREENS: [Screen, string][] = [
  ["connect", "Connect"],
  ["workspaces", "Workspaces"],
  ["history", "History"],
  ["accounts", "Accounts"],
  ["settings", "Settings"],
];
const SERVICE_NAMES: Record<Service, string> = { orbnet: "OrbNET", tunnelbyte: "tunnelbyte", neosc: "NeoSC" };

const state = {
  screen: "connect" as Screen,
  snapshot: null as Snapshot | null,
  regions: [] as RegionGroup[],
  selectedRegion: "",
  mode: "app" as TunnelMode,
  workspaces: null as WorkspacesView | null,
  history: null as HistoryView | null,
  insight: null as InsightView | null,
  budget: null as Budget | null,
  twoFactor: false,
  message: "",
};

const app = document.getElementById("app")!;
const main = h("main", { id: "screen", tabindex: "-1" });
const banner = h("p", { id: "banner", role: "status", "aria-live": "polite" });

function flash(text: string): void {
  state.message = text;
  banner.textContent = text;
  banner.hidden = text === "";
}

async function guard(work: () => Promise<void>): Promise<void> {
  try {
    flash("");
    await work();
  } catch (e) {
    const err = e as { message?: string };
    flash(err.message ?? String(e));
  }
}

function nav(): HTMLElement {
  return h(
    "nav",
    { "aria-label": "Screens" },
    h("span", { id: "brand", class: "brand" }, "Ferry"),
    SCREENS.map(([id, label], i) =>
      h(
        "button",
        {
          id: `nav-${id}`,
          class: "tab",
          "aria-current": state.screen === id ? "page" : null,
          title: `${label} (Alt+${i + 1})`,
          onclick: () => show(id),
        },
        label,
      ),
    ),
  );
}

function show(screen: Screen): void {
  state.screen = screen;
  render();
  if (screen === "workspaces") void refreshWorkspaces();
  if (screen === "history") void refreshHistory();
  if (screen === "connect") void refreshRegions();
  if (screen === "settings") void refreshBudget();
}

function accounts(): AccountView[] {
  return state.snapshot?.accounts ?? [];
}

function signedIn(s: Service): boolean {
  return accounts().some((a) => a.service === s && a.signed_in);
}

// ---- Connect screen ------------------------------------------------------------------------------

const FAVOURITES_KEY = "ferry.favourites";

function favourites(): Set<string> {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(FAVOURITES_KEY) ?? "[]");
    return new Set(Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
  } catch {
    return new Set();
  }
}

function toggleFavourite(key: string): void {
  const f = favourites();
  if (f.has(key)) f.delete(key);
  else f.add(key);
  localStorage.setItem(FAVOURITES_KEY, JSON.stringify([...f]));
  render();
}

function connectScreen(snap: Snapshot): HTMLElement {
  const c = snap.connection;
  const region = view.findRegion(state.regions, state.selectedRegion);
  const canConnect = region !== undefined && region.available && signedIn(region.ref.service);
  const ctl = view.connectControl(c, canConnect);
  const busy = c.phase !== "disconnected" && c.phase !== "error";

  const select = h(
    "select",
    { id: "region", "aria-label": "Region", disabled: busy, onchange: (e) => {
      state.selectedRegion = (e.target as HTMLSelectElement).value;
      render();
    } },
    h("option", { value: "" }, "Choose a region…"),
    view.favouritesFirst(state.regions, favourites())
      .filter((g) => g.service !== "neosc")
      .map((g) =>
        h(
          "optgroup",
          { label: SERVICE_NAMES[g.service] + (signedIn(g.service) ? "" : " (sign in first)") },
          g.regions.map((r) =>
            h(
              "option",
              {
                value: view.regionKey(r.ref),
                disabled: !r.available || !signedIn(g.service),
                selected: view.regionKey(r.ref) === state.selectedRegion,
              },
              (favourites().has(view.regionKey(r.ref)) ? "★ " : "") + view.regionOption(r) + (spend.isCheapest(state.insight, r.ref) ? " · cheapest so far" : ""),
            ),
          ),
        ),
      ),
  );
  const notes = state.regions.flatMap((g) => [
    ...(g.error ? [h("li", {}, `${SERVICE_NAMES[g.service]}: ${g.error}`)] : []),
    ...g.regions.filter((r) => !r.available && r.note).map((r) => h("li", {}, `${r.label}: ${r.note}`)),
  ]);

  const modes = h(
    "fieldset",
    { class: "modes", disabled: busy },
    h("legend", {}, "Mode"),
    ([["app", "App mode (local proxy)"], ["all_traffic", "Route all traffic"]] as [TunnelMode, string][]).map(([m, label]) =>
      h(
        "label",
        {},
        h("input", { type: "radio", name: "mode", value: m, checked: state.mode === m, onchange: () => (state.mode = m) }),
        " ",
        label,
      ),
    ),
  );

  const button = h(
    "button",
    {
      id: "connect-btn",
      class: `connect ${c.phase}`,
      "data-phase": c.phase,
      disabled: !ctl.enabled,
      "aria-busy": ctl.busy ? "true" : null,
      onclick: () =>
        guard(async () => {
          if (ctl.action === "connect" && region) {
            await call("connect", { request: { region: region.ref, mode: state.mode } });
          } else if (ctl.action === "disconnect") {
            await call("disconnect");
          }
        }),
    },
    ctl.label,
  );

  const error = c.phase === "error" && c.error
    ? h("div", { id: "error", class: "error", role: "alert" }, h("strong", {}, c.error.message), h("p", {}, c.error.action),
      c.error.alternatives.length
        ? h("div", { class: "alternatives", role: "group", "aria-label": "Regions with capacity" },
          c.error.alternatives.map((alt) => {
            const found = view.findRegion(state.regions, view.regionKey(alt));
            return h("button", {
              type: "button", class: "alternative", "data-region": view.regionKey(alt),
              disabled: busy || !signedIn(alt.service),
              onclick: () => guard(async () => {
                state.selectedRegion = view.regionKey(alt);
                render();
                await call("connect", { request: { region: alt, mode: state.mode } });
              }),
            }, `Connect to ${found ? found.label : alt.id}`);
          }))
        : null)
    : null;

  return h(
    "section",
    { class: "connect-screen", "aria-labelledby": "connect-title" },
    h("h1", { id: "connect-title", class: "visually-hidden" }, "Connect"),
    welcome(snap),
    h("div", { class: "control" }, button, h("p", { id: "status", class: "caption" }, ctl.caption), error),
    h("div", { class: "choices" }, h("label", { for: "region" }, "Region"), select,
      region === undefined ? null : h("button", {
        id: "favourite", type: "button", class: "quiet", "aria-pressed": favourites().has(state.selectedRegion) ? "true" : "false",
        onclick: () => toggleFavourite(state.selectedRegion),
      }, favourites().has(state.selectedRegion) ? "★ Favourite" : "☆ Add to favourites"), notes.length ? h("ul", { class: "notes" }, notes) : null, modes),
    snap.live && (c.phase === "connected" || c.phase === "reconnecting") ? livePanel(snap.live) : null,
  );
}

const WELCOME_KEY = "ferry.welcome.dismissed";

/** First run: the three services in a sentence each, and where to start. */
function welcome(snap: Snapshot): HTMLElement | null {
  const anySignedIn = snap.accounts.some((a) => a.signed_in);
  const dismissed = localStorage.getItem(WELCOME_KEY) === (snap.demo ? "demo" : "real");
  if (dismissed || (!snap.demo && anySignedIn)) return null;
  const dismiss = () => {
    localStorage.setItem(WELCOME_KEY, snap.demo ? "demo" : "real");
    render();
  };
  const services: [Service, string][] = [
    ["orbnet", "pays by the minute in credits: Ferry shows them burning and the time left."],
    ["tunnelbyte", "charges for time and data against two quota windows; Ferry shows the cost and when each window resets."],
    ["neosc", "runs remote workspaces on your own server: launch one, see your sessions, disconnect them."],
  ];
  return h("section", { id: "welcome", class: "card welcome", "aria-label": "Welcome" },
    h("h2", {}, snap.demo ? "Welcome to the Ferry demo" : "Welcome to Ferry"),
    h("ul", { class: "services" }, services.map(([s, text]) => h("li", {}, h("strong", {}, SERVICE_NAMES[s]), ` ${text}`))),
    snap.demo
      ? h("p", {}, "This demo runs all three on a local lab with test accounts: a region is chosen, so Connect is one click. Nothing is billed.")
      : h("p", {}, "Sign in to any of them to connect, or try everything first on a local lab."),
    snap.demo ? null : h("button", { id: "welcome-signin", onclick: () => show("accounts") }, "Sign in"),
    snap.demo ? null : h("button", { id: "welcome-demo", onclick: () => guard(async () => { await call("restart_in_demo"); }) }, "Try the demo"),
    h("button", { id: "welcome-dismiss", class: "quiet", onclick: dismiss }, "Got it"));
}

function chart(id: string, label: string, values: number[]): HTMLElement {
  const w = 240;
  const hgt = 48;
  return h(
    "figure",
    { class: "chart", id },
    svg("svg", { viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: "img", "aria-label": label },
      svg("polyline", { points: view.sparkline(values, w, hgt), fill: "none", "stroke-width": 2 })),
    h("figcaption", {}, label),
  );
}

function livePanel(live: LiveView): HTMLElement {
  const now = Date.now();
  const figures = view.liveFigures(live, now);
  const bars = live.meter.kind === "quota" ? view.quotaBars(live.meter.quotas, now) : [];
  return h(
    "section",
    { id: "live", class: "live", "aria-label": "Live session" },
    h("dl", { class: "figures" }, figures.map((f) => h("div", { id: `live-${f.id}` }, h("dt", {}, f.label), h("dd", {}, f.value)))),
    bars.length
      ? h("div", { class: "quotas" }, bars.map((b, i) =>
          h("div", { class: `quota ${b.level}`, id: `quota-${i}` },
            h("div", { class: "quota-head" }, h("span", {}, b.label), h("span", {}, b.text)),
            b.percent === null ? null : h("progress", { max: 100, value: b.percent.toFixed(1), "aria-label": b.label }),
            b.resets ? h("small", { title: b.resetsExact }, `${b.resets} (${b.resetsExact})`) : null)))
      : null,
    live.proxy === null ? null : h("button", { id: "open-browser", onclick: () => guard(async () => {
      const name = await call("open_browser");
      flash(`Started ${name} in its own profile, browsing through Ferry.`);
    }) }, "Open a browser through Ferry"),
    h("div", { class: "charts" },
      chart("chart-meter", live.meter.kind === "credits" ? "Credits left" : "Cost", live.samples.map((s) => s.meter)),
      chart("chart-bytes", "Traffic", live.samples.map((s) => s.bytes))),
  );
}

// ---- Workspaces ----------------------------------------------------------------------------------

async function refreshWorkspaces(): Promise<void> {
  if (!signedIn("neosc")) return;
  await guard(async () => {
    state.workspaces = await call("list_workspaces");
    if (state.screen === "workspaces") render();
  });
}

function workspacesScreen(): HTMLElement {
  if (!signedIn("neosc")) return h("section", {}, h("h1", {}, "Workspaces"), h("p", {}, "Sign in to NeoSC on the Accounts screen."));
  const w = state.workspaces;
  const act = (cmd: "stop_workspace" | "disconnect_workspace_session", id: string, confirmText: string) =>
    guard(async () => {
      if (!window.confirm(confirmText)) return;
      state.workspaces = await call(cmd, { id });
      render();
    });
  const launch = (id: string, name: string) =>
    guard(async () => {
      const out = await call("launch_workspace", { id });
      state.workspaces = out.workspaces;
      render();
      flash(out.open_url === null
        ? `${name} is starting; the server gave no viewer address to open.`
        : `${name} is starting; opened it in your browser (${out.open_url}).`);
    });
  return h(
    "section",
    { id: "workspaces" },
    h("h1", {}, "Workspaces"),
    w === null ? h("p", {}, "Loading…") : [
      h("ul", { class: "cards" }, w.workspaces.map((ws) =>
        h("li", { class: "card", id: `ws-${ws.id}` },
          h("strong", {}, ws.name), h("span", { class: "pill" }, ws.state),
          h("button", { "data-launch": ws.id, onclick: () => launch(ws.id, ws.name), disabled: ws.state === "running" || ws.state === "coming_soon" }, "Launch"),
          h("button", { "data-stop": ws.id, onclick: () => act("stop_workspace", ws.id, `Stop ${ws.name}? Its session ends.`), disabled: ws.state !== "running" }, "Stop")))),
      h("h2", {}, "Sessions"),
      h("table", { id: "ws-sessions" },
        h("thead", {}, h("tr", {}, ["Workspace", "Type", "Started", "Duration", "Tunnel", "MFA", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, view.sortSessions(w.sessions).map((s) =>
          h("tr", { class: s.active ? "active" : "ended", "data-session": s.id },
            h("td", {}, s.workspace), h("td", {}, s.kind), h("td", {}, fmt.dateTime(s.started_ms)),
            h("td", {}, fmt.duration(((s.ended_ms ?? Date.now()) - s.started_ms) / 1000)),
            h("td", {}, s.tunnel), h("td", {}, s.mfa ? "yes" : "no"),
            h("td", {}, s.active ? h("button", { class: "danger", "data-disconnect": s.id, onclick: () => act("disconnect_workspace_session", s.id, `Disconnect the session on ${s.workspace}?`) }, "Disconnect") : "ended"))))),
      h("p", { class: "caption" }, `Refreshed ${fmt.dateTime(w.refreshed_ms)}; every 30 s.`),
    ],
  );
}

// ---- History -------------------------------------------------------------------------------------

async function refreshHistory(): Promise<void> {
  await guard(async () => {
    state.history = await call("get_history");
    state.insight = await call("get_insight");
    if (state.screen === "history") render();
  });
}

async function refreshInsight(): Promise<void> {
  await guard(async () => {
    state.insight = await call("get_insight");
    if (state.screen === "history" || state.screen === "connect") render();
  });
}

function spendSection(): HTMLElement | null {
  const v = state.insight;
  if (v === null) return null;
  const charts = spend.spendCharts(v, state.regions);
  const month = spend.monthLines(v);
  if (charts.length === 0 && month.length === 0) return null;
  return h("section", { id: "spend", "aria-label": "Spending" },
    h("h2", {}, "Spending"),
    month.length ? h("ul", { id: "month-forecast", class: "notes" }, month.map((m) => h("li", {}, m))) : null,
    h("div", { class: "charts" }, charts.map((c) => h("figure", { class: "chart-box" }, barChart(c), h("figcaption", {}, c.title)))));
}

function historyScreen(): HTMLElement {
  const hist = state.history;
  return h(
    "section",
    { id: "history" },
    h("h1", {}, "History"),
    h("button", { id: "export-csv", onclick: () => guard(async () => flash(`Saved ${await call("export_history_csv")}`)) }, "Export CSV"),
    hist === null ? h("p", {}, "Loading…") : [
      spendSection(),
      h("h2", {}, "Per day"),
      h("table", { id: "history-days" },
        h("thead", {}, h("tr", {}, ["Day", "Sessions", "Time", "Credits", "Cost", "Data"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, hist.days.map((d) => h("tr", {}, h("td", {}, d.day), h("td", {}, d.sessions), h("td", {}, fmt.duration(d.duration_s)),
          h("td", {}, fmt.credits(d.credits_used)), h("td", {}, fmt.money(d.cost_millicents, state.history?.currency ?? null)), h("td", {}, fmt.bytes(d.bytes)))))),
      h("h2", {}, "Sessions"),
      hist.rows.length === 0 ? h("p", {}, "No sessions yet.") :
      h("table", { id: "history-rows" },
        h("thead", {}, h("tr", {}, ["Service", "Region", "Start", "Duration", "Used", "Data", "Ended"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, hist.rows.map((r) => h("tr", { "data-row": r.id },
          h("td", {}, SERVICE_NAMES[r.service]), h("td", { title: r.region }, spend.placeName(r, state.regions)), h("td", {}, fmt.dateTime(r.started_ms)), h("td", {}, fmt.duration(r.duration_s)),
          h("td", {}, r.credits_used !== null ? `${fmt.credits(r.credits_used)} credits` : r.cost_millicents !== null ? fmt.money(r.cost_millicents, r.currency) : "free"),
          h("td", {}, fmt.bytes(r.bytes)), h("td", { title: r.end_reason ?? "" }, r.end_label ?? r.end_reason ?? "open"))))),
    ],
  );
}

// ---- Accounts ------------------------------------------------------------------------------------

function field(id: string, label: string, type: string, autocomplete: string): HTMLElement {
  return h("label", { for: id }, label, h("input", { id, name: id, type, autocomplete, required: true }));
}

function value(id: string): string {
  return (document.getElementById(id) as HTMLInputElement | null)?.value ?? "";
}

function accountCard(a: AccountView): HTMLElement {
  const s = a.service;
  const head = h("h2", {}, SERVICE_NAMES[s]);
  if (a.signed_in) {
    return h("section", { class: "card account", id: `account-${s}` }, head,
      h("p", { class: "signed-in" }, "Signed in", a.label ? ` as ${a.label}` : "", a.credits !== null ? ` · ${fmt.credits(a.credits)} credits` : ""),
      h("button", { onclick: () => guard(async () => { await call("sign_out", { service: s }); await reload(); }) }, "Sign out"));
  }
  const submit = (request: Commands["sign_in"]["args"]) => guard(async () => {
    const out = await call("sign_in", request);
    if (out.outcome === "needs_two_factor") {
      state.twoFactor = true;
      render();
      flash("Enter the 6-digit code from your authenticator app.");
    } else {
      state.twoFactor = false;
      await reload();
    }
  });
  const form = (children: HTMLElement[], onsubmit: () => void) =>
    h("form", { onsubmit: (e: Event) => { e.preventDefault(); onsubmit(); } }, children);
  let body: HTMLElement;
  if (s === "orbnet") {
    body = form([
      field("orbnet-email", "Email", "email", "username"),
      field("orbnet-password", "Password", "password", "current-password"),
      ...(state.twoFactor ? [field("orbnet-totp", "2FA code", "text", "one-time-code")] : []),
      h("button", { type: "submit", id: "orbnet-signin" }, "Sign in"),
    ], () => void submit({ request: { service: "orbnet", email: value("orbnet-email"), password: value("orbnet-password"), totp: state.twoFactor ? value("orbnet-totp") : null } }));
  } else if (s === "tunnelbyte") {
    body = form([
      field("tunnelbyte-token", "API token", "password", "off"),
      h("button", { type: "submit", id: "tunnelbyte-signin" }, "Sign in"),
      h("button", { type: "button", onclick: () => void submit({ request: { service: "tunnelbyte", token: null } }) }, "Import from the tunnelbyte CLI"),
    ], () => void submit({ request: { service: "tunnelbyte", token: value("tunnelbyte-token") } }));
  } else {
    // NeoSC is self-hosted: its address is asked here and kept in settings.
    const server = field("neosc-server", "Server address (https://…)", "url", "url");
    const input = server.querySelector("input");
    if (input) input.value = state.snapshot?.settings.base_urls.neosc ?? "";
    body = form([
      server,
      field("neosc-email", "Email", "email", "username"),
      field("neosc-password", "Password", "password", "current-password"),
      h("button", { type: "submit", id: "neosc-signin" }, "Sign in"),
    ], () => void submit({ request: { service: "neosc", server: value("neosc-server") || null, email: value("neosc-email"), password: value("neosc-password") } }));
  }
  return h("section", { class: "card account", id: `account-${s}` }, head, body);
}

function accountsScreen(): HTMLElement {
  return h("section", { id: "accounts" }, h("h1", {}, "Accounts"),
    h("p", { class: "caption" }, "Tokens are kept in the system keyring, never on disk."),
    h("div", { class: "cards" }, accounts().map(accountCard)));
}

// ---- Settings ------------------------------------------------------------------------------------

async function refreshBudget(): Promise<void> {
  await guard(async () => {
    state.budget = await call("get_budget");
    // Only the caps' own form is rebuilt: text typed in the other settings stays.
    const slot = document.getElementById("budget-slot");
    if (slot && state.screen === "settings") replace(slot, budgetSection());
  });
}

const BUDGET_FIELDS: [keyof spend.BudgetForm, string][] = [
  ["session_credits", "OrbNET credits per session"],
  ["day_credits", "OrbNET credits per day"],
  ["month_credits", "OrbNET credits per month"],
  ["session_money", "tunnelbyte money per session"],
  ["day_money", "tunnelbyte money per day"],
  ["month_money", "tunnelbyte money per month"],
];

function budgetSection(): HTMLElement {
  const b = state.budget;
  if (b === null) return h("p", {}, "Loading spend caps…");
  const form = spend.budgetForm(b);
  const currency = (state.history?.currency ?? "eur").toUpperCase();
  return h("form", { id: "budget", onsubmit: (e: Event) => {
    e.preventDefault();
    void guard(async () => {
      const parsed = spend.parseBudget(form);
      if ("invalid" in parsed) {
        const label = BUDGET_FIELDS.find(([k]) => k === parsed.invalid)?.[1] ?? parsed.invalid;
        flash(`${label}: enter a positive number, or leave it empty for no cap.`);
        return;
      }
      state.budget = await call("save_budget", { budget: parsed });
      const slot = document.getElementById("budget-slot");
      if (slot) replace(slot, budgetSection());
      flash("Spend caps saved: the next session honours them.");
    });
  } },
    h("fieldset", {}, h("legend", {}, "Spend caps"),
      h("p", { class: "caption" }, `Ferry ends the session before the next charge would pass a cap; days and months are local time. Money in ${currency}. Empty: no cap.`),
      BUDGET_FIELDS.map(([k, label]) =>
        h("label", { for: `b-${k}` }, k.endsWith("money") ? `${label} (${currency})` : label,
          h("input", { id: `b-${k}`, type: "text", inputmode: "decimal", value: form[k], oninput: (e) => (form[k] = (e.target as HTMLInputElement).value) }))),
      h("button", { type: "submit", id: "save-budget" }, "Save caps")));
}

function settingsScreen(s: Settings): HTMLElement {
  const draft: Settings = structuredClone(s);
  const check = (id: string, label: string, get: () => boolean, set: (v: boolean) => void) =>
    h("label", { class: "check" }, h("input", { id, type: "checkbox", checked: get(), onchange: (e) => set((e.target as HTMLInputElement).checked) }), " ", label);
  const text = (id: string, label: string, get: () => string, set: (v: string) => void) =>
    h("label", { for: id }, label, h("input", { id, type: "text", value: get(), oninput: (e) => set((e.target as HTMLInputElement).value) }));
  const n = draft.notify;
  return h("section", { id: "settings" }, h("h1", {}, "Settings"),
    h("form", { onsubmit: (e: Event) => { e.preventDefault(); void guard(async () => { await call("save_settings", { settings: draft }); flash("Settings saved."); }); } },
      h("fieldset", {}, h("legend", {}, "Notifications"),
        check("n-credits-low", "Credits low", () => n.credits_low, (v) => (n.credits_low = v)),
        text("n-thresholds", "Warn when credits last under (minutes, comma-separated)", () => n.credit_warn_minutes.join(", "), (v) => {
          n.credit_warn_minutes = v.split(",").map((x) => Number(x.trim())).filter((x) => Number.isFinite(x) && x > 0);
        }),
        check("n-depleted", "Credits depleted", () => n.credits_depleted, (v) => (n.credits_depleted = v)),
        check("n-quota", "Quota at 80 %, 95 % and exceeded", () => n.quota, (v) => (n.quota = v)),
        check("n-ended", "Session ended by the service", () => n.session_ended, (v) => (n.session_ended = v)),
        check("n-connection", "Connection lost and restored", () => n.connection, (v) => (n.connection = v)),
        check("n-workspace", "Workspace session ended elsewhere", () => n.workspace_ended, (v) => (n.workspace_ended = v))),
      h("fieldset", {}, h("legend", {}, "App"),
        check("s-minimized", "Start minimized", () => draft.start_minimized, (v) => (draft.start_minimized = v)),
        check("s-login", "Launch at login", () => draft.launch_at_login, (v) => (draft.launch_at_login = v)),
        check("s-tray", "Closing the window keeps Ferry in the tray", () => draft.close_to_tray, (v) => (draft.close_to_tray = v)),
        check("s-desktop-proxy", "Send this desktop's apps through Ferry (GNOME proxy settings, while connected in app mode; yours come back on disconnect)", () => draft.desktop_proxy, (v) => (draft.desktop_proxy = v)),
        h("label", { for: "s-mode" }, "Default mode",
          h("select", { id: "s-mode", onchange: (e) => (draft.default_mode = (e.target as HTMLSelectElement).value as TunnelMode) },
            h("option", { value: "app", selected: draft.default_mode === "app" }, "App mode"),
            h("option", { value: "all_traffic", selected: draft.default_mode === "all_traffic" }, "Route all traffic")))),
      h("fieldset", {}, h("legend", {}, "Service addresses"),
        text("u-orbnet", "OrbNET", () => draft.base_urls.orbnet, (v) => (draft.base_urls.orbnet = v)),
        text("u-tunnelbyte", "tunnelbyte", () => draft.base_urls.tunnelbyte, (v) => (draft.base_urls.tunnelbyte = v)),
        text("u-neosc", "NeoSC", () => draft.base_urls.neosc, (v) => (draft.base_urls.neosc = v))),
      h("button", { type: "submit", id: "save-settings" }, "Save")),
    h("div", { id: "budget-slot" }, budgetSection()),
    aboutSection(s));
}

/** Ferry's own licence and those of the parts it is built on (their names and licences). */
const LICENCES: [string, string][] = [
  ["Ferry", "MIT OR Apache-2.0"],
  ["Tauri", "MIT OR Apache-2.0"],
  ["boringtun (WireGuard)", "BSD-3-Clause"],
  ["smoltcp (app mode's TCP/IP stack)", "0BSD"],
  ["tokio, hyper, reqwest, rustls", "MIT OR Apache-2.0"],
  ["sqlx + SQLite", "MIT OR Apache-2.0 / public domain"],
  ["WebKitGTK", "LGPL-2.1-or-later, BSD-2-Clause"],
];

function aboutSection(_s: Settings): HTMLElement {
  const out = h("textarea", { id: "diagnostics", readonly: true, rows: 8, "aria-label": "Diagnostics report", hidden: true });
  return h("section", { id: "about", class: "card" },
    h("h2", {}, "About Ferry"),
    h("p", { id: "about-version" }, `Version ${state.snapshot?.version ?? "?"}`),
    h("table", { id: "licences" }, h("tbody", {}, LICENCES.map(([what, lic]) => h("tr", {}, h("td", {}, what), h("td", {}, lic))))),
    h("p", { class: "caption" }, "The diagnostics report holds versions, the connection state, settings, spend caps and the last 200 log lines; tokens, keys, emails and ids are removed."),
    h("button", { id: "copy-diagnostics", type: "button", onclick: () => guard(async () => {
      const text = await call("get_diagnostics");
      out.value = text;
      out.hidden = false;
      try {
        await navigator.clipboard.writeText(text);
        flash("Diagnostics copied to the clipboard.");
      } catch {
        out.select();
        flash("Diagnostics shown below: select them and copy.");
      }
    }) }, "Copy diagnostics"),
    out);
}

// ---- Shell ---------------------------------------------------------------------------------------

function render(): void {
  const snap = state.snapshot;
  const focused = document.activeElement?.id;
  let screen: HTMLElement;
  if (snap === null) screen = h("p", {}, "Starting…");
  else if (state.screen === "connect") screen = connectScreen(snap);
  else if (state.screen === "workspaces") screen = workspacesScreen();
  else if (state.screen === "history") screen = historyScreen();
  else if (state.screen === "accounts") screen = accountsScreen();
  else screen = settingsScreen(snap.settings);
  const header = h("header", {}, nav(), snap?.demo ? h("span", { class: "pill demo", id: "demo-badge" }, "Demo") : null);
  replace(main, screen);
  replace(app, header, banner, main);
  banner.hidden = state.message === "";
  if (focused) document.getElementById(focused)?.focus();
  app.dataset.screen = state.screen;
}

async function refreshRegions(): Promise<void> {
  await guard(async () => {
    state.regions = await call("list_regions");
    state.selectedRegion = view.defaultRegion(state.regions, state.selectedRegion, signedIn);
    if (state.screen === "connect") render();
  });
}

/** Each reload's number: a snapshot that arrives after a newer one was asked for is dropped. */
let reloads = 0;

async function reload(): Promise<void> {
  const mine = ++reloads;
  const snap = await call("get_snapshot");
  if (mine !== reloads) return;
  state.snapshot = snap;
  if (state.selectedRegion === "" && state.snapshot.last_region) state.selectedRegion = view.regionKey(state.snapshot.last_region);
  state.mode = state.snapshot.settings.default_mode;
  render();
  await refreshRegions();
  await refreshInsight();
}

function patch(update: (s: Snapshot) => void): void {
  if (state.snapshot === null) return;
  update(state.snapshot);
  // Keep typing undisturbed: only the connect screen re-renders on live ticks.
  if (state.screen === "connect") render();
}

/**
 * Closing the window while a session meters and no tray icon would show it: ask, in a modal
 * dialog, whether to disconnect and quit, minimize, or keep the window.
 */
function askBeforeClose(): void {
  if (document.getElementById("close-dialog")) return;
  const c = state.snapshot?.connection;
  const where = c?.region_label ? ` to ${c.region_label}` : "";
  const choice = (id: string, label: string, cls: string, act: () => Promise<unknown>) =>
    h("button", { id, type: "button", class: cls, onclick: () => {
      dialog.close();
      dialog.remove();
      void guard(async () => { await act(); });
    } }, label);
  const dialog = h(
    "dialog",
    { id: "close-dialog", "aria-labelledby": "close-title" },
    h("h2", { id: "close-title" }, "Ferry is still connected"),
    h("p", {}, `You are connected${where} and the session is metered. No tray icon is shown on this desktop, so a hidden Ferry would keep billing unseen.`),
    h("div", { class: "actions" },
      choice("close-quit", "Disconnect and quit", "danger", () => call("quit_app")),
      choice("close-minimize", "Minimize", "", () => call("minimize_window")),
      choice("close-cancel", "Keep open", "quiet", async () => undefined)),
  );
  // The safe choice has the focus: Enter keeps the window.
  dialog.addEventListener("cancel", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  document.getElementById("close-cancel")?.focus();
}

async function start(): Promise<void> {
  document.addEventListener("keydown", (e) => {
    if (e.altKey && e.key >= "1" && e.key <= String(SCREENS.length)) {
      e.preventDefault();
      show(SCREENS[Number(e.key) - 1]![0]);
      document.getElementById("screen")?.focus();
    }
  });
  await on("ferry:connection", (c: ConnectionView) => patch((s) => {
    s.connection = c;
    if (c.region) state.selectedRegion = view.regionKey(c.region);
  }));
  await on("ferry:live", (l) => patch((s) => (s.live = l)));
  // Account updates arrive with every heartbeat (the balance): they never re-render a form
  // the user is typing in, and regions come from the core's own "ferry:regions" event.
  await on("ferry:accounts", (a) => {
    // Who is signed in changed (not just a balance tick): the accounts screen shows it at once.
    const who = (list: AccountView[]) => list.map((x) => `${x.service}:${x.signed_in}:${x.label ?? ""}`).join(",");
    const changed = state.snapshot !== null && who(state.snapshot.accounts) !== who(a);
    patch((s) => (s.accounts = a));
    if (changed && state.screen === "accounts") render();
  });
  await on("ferry:settings", (st) => patch((s) => (s.settings = st)));
  await on("ferry:workspaces", (w) => {
    state.workspaces = w;
    if (state.screen === "workspaces") render();
  });
  await on("ferry:history", (hv) => {
    state.history = hv;
    if (state.screen === "history") render();
    void refreshInsight();
  });
  // Regions and warnings come from the core's one event stream; so do workspace refreshes
  // (the core's NeoSC watcher), so the window polls nothing itself.
  await on("ferry:regions", (r) => {
    state.regions = r;
    state.selectedRegion = view.defaultRegion(state.regions, state.selectedRegion, signedIn);
    if (state.screen === "connect") render();
  });
  await on("ferry:warning", (w) => flash(w.message));
  await on("ferry:close-asked", () => askBeforeClose());
  await guard(reload);
  // Regions change (busy, offline, new ones): refreshed every minute while they are on screen.
  window.setInterval(() => {
    const phase = state.snapshot?.connection.phase;
    if (state.screen === "connect" && document.visibilityState === "visible" && (phase === "disconnected" || phase === "error")) void refreshRegions();
  }, 60_000);
  document.documentElement.dataset.ready = "1";
}

render();
void start();

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
import { S } from "./strings";
import * as view from "./view";

type Screen = "connect" | "workspaces" | "history" | "accounts" | "settings";
const SCREENS: [Screen, string][] = [
  ["connect", S.screens.connect],
  ["workspaces", S.screens.workspaces],
  ["history", S.screens.history],
  ["accounts", S.screens.accounts],
  ["settings", S.screens.settings],
];
const SERVICE_NAMES: Record<Service, string> = S.services;

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
  /** Latency measured per region while connected to it (ms, by region key), this run. */
  latency: new Map<string, number>(),
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
    { "aria-label": S.app.navLabel },
    h("span", { id: "brand", class: "brand" }, S.app.name),
    SCREENS.map(([id, label], i) =>
      h(
        "button",
        {
          id: `nav-${id}`,
          class: "tab",
          "aria-current": state.screen === id ? "page" : null,
          title: S.app.navTitle(label, i + 1),
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
    { id: "region", "aria-label": S.connect.region, disabled: busy, onchange: (e) => {
      state.selectedRegion = (e.target as HTMLSelectElement).value;
      render();
    } },
    h("option", { value: "" }, S.connect.chooseRegion),
    view.favouritesFirst(state.regions, favourites())
      .filter((g) => g.service !== "neosc")
      .map((g) =>
        h(
          "optgroup",
          { label: signedIn(g.service) ? SERVICE_NAMES[g.service] : S.connect.signInFirst(SERVICE_NAMES[g.service]) },
          g.regions.map((r) =>
            h(
              "option",
              {
                value: view.regionKey(r.ref),
                disabled: !r.available || !signedIn(g.service),
                selected: view.regionKey(r.ref) === state.selectedRegion,
              },
              S.connect.regionChoice(view.regionOption(r), favourites().has(view.regionKey(r.ref)), spend.isCheapest(state.insight, r.ref), state.latency.get(view.regionKey(r.ref)) ?? null),
            ),
          ),
        ),
      ),
  );
  const notes = state.regions.flatMap((g) => [
    ...(g.error ? [h("li", {}, S.connect.note(SERVICE_NAMES[g.service], g.error))] : []),
    ...g.regions.filter((r) => !r.available && r.note).map((r) => h("li", {}, S.connect.note(r.label, r.note ?? ""))),
  ]);

  const modes = h(
    "fieldset",
    { class: "modes", disabled: busy },
    h("legend", {}, S.connect.mode),
    ([["app", S.connect.appModeLong], ["all_traffic", S.connect.allTraffic]] as [TunnelMode, string][]).map(([m, label]) =>
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
        ? h("div", { class: "alternatives", role: "group", "aria-label": S.connect.alternatives },
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
            }, S.connect.connectTo(found ? found.label : alt.id));
          }))
        : null)
    : null;

  return h(
    "section",
    { class: "connect-screen", "aria-labelledby": "connect-title" },
    h("h1", { id: "connect-title", class: "visually-hidden" }, S.screens.connect),
    welcome(snap),
    h("div", { class: "control" }, button, h("p", { id: "status", class: "caption" }, ctl.caption), error),
    h("div", { class: "choices" }, h("label", { for: "region" }, S.connect.region), select,
      region === undefined ? null : h("button", {
        id: "favourite", type: "button", class: "quiet", "aria-pressed": favourites().has(state.selectedRegion) ? "true" : "false",
        onclick: () => toggleFavourite(state.selectedRegion),
      }, favourites().has(state.selectedRegion) ? S.connect.favourite : S.connect.addFavourite), notes.length ? h("ul", { class: "notes" }, notes) : null, modes),
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
  const t = S.welcome;
  const services: [Service, string][] = [
    ["orbnet", t.services.orbnet],
    ["tunnelbyte", t.services.tunnelbyte],
    ["neosc", t.services.neosc],
  ];
  return h("section", { id: "welcome", class: "card welcome", "aria-label": t.label },
    h("h2", {}, snap.demo ? t.titleDemo : t.title),
    h("ul", { class: "services" }, services.map(([s, text]) => h("li", {}, h("strong", {}, SERVICE_NAMES[s]), ` ${text}`))),
    snap.demo
      ? h("p", {}, t.demo)
      : h("p", {}, t.real),
    snap.demo ? null : h("button", { id: "welcome-signin", onclick: () => show("accounts") }, t.signIn),
    snap.demo ? null : h("button", { id: "welcome-demo", onclick: () => guard(async () => { await call("restart_in_demo"); }) }, t.tryDemo),
    h("button", { id: "welcome-dismiss", class: "quiet", onclick: dismiss }, t.gotIt));
}

/** A live chart: the line, its lowest and highest values as labels, the newest as a tooltip. */
function chart(id: string, label: string, values: number[], value: (v: number) => string, spanS: number): HTMLElement {
  const w = 240;
  const hgt = 48;
  const last = values[values.length - 1];
  const low = values.length ? value(Math.min(...values)) : S.app.unknown;
  const high = values.length ? value(Math.max(...values)) : S.app.unknown;
  const caption = S.live.chartCaption(label, low, high, fmt.duration(spanS));
  return h(
    "figure",
    { class: "chart", id },
    svg("svg", { viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: "img", "aria-label": caption },
      svg("title", {}, document.createTextNode(last === undefined ? caption : S.live.chartNow(label, value(last)))),
      svg("polyline", { points: view.sparkline(values, w, hgt), fill: "none", "stroke-width": 2 })),
    h("figcaption", {}, caption),
  );
}

/** Seconds between the oldest and the newest chart sample. */
function chartSpan(live: LiveView): number {
  const first = live.samples[0];
  const last = live.samples[live.samples.length - 1];
  return first && last ? Math.max(0, (last.at_ms - first.at_ms) / 1000) : 0;
}

function livePanel(live: LiveView): HTMLElement {
  const now = Date.now();
  const figures = view.liveFigures(live, now);
  const bars = live.meter.kind === "quota" ? view.quotaBars(live.meter.quotas, now) : [];
  return h(
    "section",
    { id: "live", class: "live", "aria-label": S.live.label },
    h("dl", { class: "figures" }, figures.map((f) => h("div", { id: `live-${f.id}` }, h("dt", {}, f.label), h("dd", {}, f.value)))),
    bars.length
      ? h("div", { class: "quotas" }, bars.map((b, i) =>
          h("div", { class: `quota ${b.level}`, id: `quota-${i}` },
            h("div", { class: "quota-head" }, h("span", {}, b.label), h("span", {}, b.text)),
            b.percent === null ? null : h("progress", { max: 100, value: b.percent.toFixed(1), "aria-label": b.label }),
            b.resets ? h("small", { title: b.resetsExact }, S.live.resets(b.resets, b.resetsExact)) : null)))
      : null,
    live.proxy === null ? null : h("button", { id: "open-browser", onclick: () => guard(async () => {
      const name = await call("open_browser");
      flash(S.live.browserStarted(name));
    }) }, S.live.openBrowser),
    h("div", { class: "charts" },
      chart("chart-meter", live.meter.kind === "credits" ? S.live.chartCredits : S.live.chartCost, live.samples.map((s) => s.meter),
        live.meter.kind === "credits" ? fmt.credits : (v) => fmt.money(v, live.meter.kind === "quota" ? live.meter.currency : null),
        chartSpan(live)),
      chart("chart-bytes", S.live.chartTraffic, live.samples.map((s) => s.bytes), fmt.bytes, chartSpan(live))),
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
  const t = S.workspaces;
  if (!signedIn("neosc")) return h("section", {}, h("h1", {}, S.screens.workspaces), h("p", {}, t.signIn));
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
        ? t.starting(name)
        : t.startingOpened(name, out.open_url));
    });
  return h(
    "section",
    { id: "workspaces" },
    h("h1", {}, S.screens.workspaces),
    w === null ? h("p", {}, S.app.loading) : [
      h("ul", { class: "cards" }, w.workspaces.map((ws) =>
        h("li", { class: "card", id: `ws-${ws.id}` },
          h("strong", {}, ws.name), h("span", { class: "pill" }, ws.state),
          h("button", { "data-launch": ws.id, onclick: () => launch(ws.id, ws.name), disabled: ws.state === "running" || ws.state === "coming_soon" }, t.launch),
          h("button", { "data-stop": ws.id, onclick: () => act("stop_workspace", ws.id, t.confirmStop(ws.name)), disabled: ws.state !== "running" }, t.stop)))),
      h("h2", {}, t.sessions),
      h("table", { id: "ws-sessions" },
        h("thead", {}, h("tr", {}, [t.columns.workspace, t.columns.type, t.columns.started, t.columns.duration, t.columns.tunnel, t.columns.mfa, ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, view.sortSessions(w.sessions).map((s) =>
          h("tr", { class: s.active ? "active" : "ended", "data-session": s.id },
            h("td", {}, s.workspace), h("td", {}, s.kind), h("td", {}, fmt.dateTime(s.started_ms)),
            h("td", {}, fmt.duration(((s.ended_ms ?? Date.now()) - s.started_ms) / 1000)),
            h("td", {}, s.tunnel), h("td", {}, s.mfa ? t.yes : t.no),
            h("td", {}, s.active ? h("button", { class: "danger", "data-disconnect": s.id, onclick: () => act("disconnect_workspace_session", s.id, t.confirmDisconnect(s.workspace)) }, t.disconnect) : t.ended))))),
      h("p", { class: "caption" }, t.refreshed(fmt.dateTime(w.refreshed_ms))),
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
  return h("section", { id: "spend", "aria-label": S.spend.label },
    h("h2", {}, S.spend.label),
    month.length ? h("ul", { id: "month-forecast", class: "notes" }, month.map((m) => h("li", {}, m))) : null,
    h("div", { class: "charts" }, charts.map((c) => h("figure", { class: "chart-box" }, barChart(c), h("figcaption", {}, c.title)))));
}

function historyScreen(): HTMLElement {
  const hist = state.history;
  const t = S.history;
  const dc = t.dayColumns;
  const rc = t.rowColumns;
  return h(
    "section",
    { id: "history" },
    h("h1", {}, S.screens.history),
    h("button", { id: "export-csv", onclick: () => guard(async () => flash(t.saved(await call("export_history_csv")))) }, t.exportCsv),
    hist === null ? h("p", {}, S.app.loading) : [
      spendSection(),
      h("h2", {}, t.perDay),
      h("table", { id: "history-days" },
        h("thead", {}, h("tr", {}, [dc.day, dc.sessions, dc.time, dc.credits, dc.cost, dc.data].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, hist.days.map((d) => h("tr", {}, h("td", {}, d.day), h("td", {}, d.sessions), h("td", {}, fmt.duration(d.duration_s)),
          h("td", {}, fmt.credits(d.credits_used)), h("td", {}, fmt.money(d.cost_millicents, state.history?.currency ?? null)), h("td", {}, fmt.bytes(d.bytes)))))),
      h("h2", {}, t.sessions),
      hist.rows.length === 0 ? h("p", {}, t.noSessions) :
      h("table", { id: "history-rows" },
        h("thead", {}, h("tr", {}, [rc.service, rc.region, rc.start, rc.duration, rc.used, rc.data, rc.ended].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, hist.rows.map((r) => h("tr", { "data-row": r.id },
          h("td", {}, SERVICE_NAMES[r.service]), h("td", { title: r.region }, spend.placeName(r, state.regions)), h("td", {}, fmt.dateTime(r.started_ms)), h("td", {}, fmt.duration(r.duration_s)),
          h("td", {}, r.credits_used !== null ? t.credits(fmt.credits(r.credits_used)) : r.cost_millicents !== null ? fmt.money(r.cost_millicents, r.currency) : t.free),
          h("td", {}, fmt.bytes(r.bytes)), h("td", { title: r.end_reason ?? "" }, r.end_label ?? r.end_reason ?? t.open))))),
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
  const t = S.accounts;
  if (a.signed_in) {
    return h("section", { class: "card account", id: `account-${s}` }, head,
      h("p", { class: "signed-in" }, t.signedIn, a.label ? t.as(a.label) : "", a.credits !== null ? t.credits(fmt.credits(a.credits)) : ""),
      h("button", { onclick: () => guard(async () => { await call("sign_out", { service: s }); await reload(); }) }, t.signOut));
  }
  const submit = (request: Commands["sign_in"]["args"]) => guard(async () => {
    const out = await call("sign_in", request);
    if (out.outcome === "needs_two_factor") {
      state.twoFactor = true;
      render();
      flash(t.enterCode);
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
      field("orbnet-email", t.email, "email", "username"),
      field("orbnet-password", t.password, "password", "current-password"),
      ...(state.twoFactor ? [field("orbnet-totp", t.totp, "text", "one-time-code")] : []),
      h("button", { type: "submit", id: "orbnet-signin" }, t.signIn),
    ], () => void submit({ request: { service: "orbnet", email: value("orbnet-email"), password: value("orbnet-password"), totp: state.twoFactor ? value("orbnet-totp") : null } }));
  } else if (s === "tunnelbyte") {
    body = form([
      field("tunnelbyte-token", t.token, "password", "off"),
      h("button", { type: "submit", id: "tunnelbyte-signin" }, t.signIn),
      h("button", { type: "button", onclick: () => void submit({ request: { service: "tunnelbyte", token: null } }) }, t.importCli),
    ], () => void submit({ request: { service: "tunnelbyte", token: value("tunnelbyte-token") } }));
  } else {
    // NeoSC is self-hosted: its address is asked here and kept in settings.
    const server = field("neosc-server", t.server, "url", "url");
    const input = server.querySelector("input");
    if (input) input.value = state.snapshot?.settings.base_urls.neosc ?? "";
    body = form([
      server,
      field("neosc-email", t.email, "email", "username"),
      field("neosc-password", t.password, "password", "current-password"),
      h("button", { type: "submit", id: "neosc-signin" }, t.signIn),
    ], () => void submit({ request: { service: "neosc", server: value("neosc-server") || null, email: value("neosc-email"), password: value("neosc-password") } }));
  }
  return h("section", { class: "card account", id: `account-${s}` }, head, body);
}

function accountsScreen(): HTMLElement {
  return h("section", { id: "accounts" }, h("h1", {}, S.screens.accounts),
    h("p", { class: "caption" }, S.accounts.keyring),
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
  ["session_credits", S.budget.fields.session_credits],
  ["day_credits", S.budget.fields.day_credits],
  ["month_credits", S.budget.fields.month_credits],
  ["session_money", S.budget.fields.session_money],
  ["day_money", S.budget.fields.day_money],
  ["month_money", S.budget.fields.month_money],
];

function budgetSection(): HTMLElement {
  const b = state.budget;
  const t = S.budget;
  if (b === null) return h("p", {}, t.loading);
  const form = spend.budgetForm(b);
  const currency = (state.history?.currency ?? "eur").toUpperCase();
  return h("form", { id: "budget", onsubmit: (e: Event) => {
    e.preventDefault();
    void guard(async () => {
      const parsed = spend.parseBudget(form);
      if ("invalid" in parsed) {
        const label = BUDGET_FIELDS.find(([k]) => k === parsed.invalid)?.[1] ?? parsed.invalid;
        flash(t.invalid(label));
        return;
      }
      state.budget = await call("save_budget", { budget: parsed });
      const slot = document.getElementById("budget-slot");
      if (slot) replace(slot, budgetSection());
      flash(t.saved);
    });
  } },
    h("fieldset", {}, h("legend", {}, t.legend),
      h("p", { class: "caption" }, t.caption(currency)),
      BUDGET_FIELDS.map(([k, label]) =>
        h("label", { for: `b-${k}` }, k.endsWith("money") ? t.withCurrency(label, currency) : label,
          h("input", { id: `b-${k}`, type: "text", inputmode: "decimal", value: form[k], oninput: (e) => (form[k] = (e.target as HTMLInputElement).value) }))),
      h("button", { type: "submit", id: "save-budget" }, t.save)));
}

function settingsScreen(s: Settings): HTMLElement {
  const draft: Settings = structuredClone(s);
  const check = (id: string, label: string, get: () => boolean, set: (v: boolean) => void) =>
    h("label", { class: "check" }, h("input", { id, type: "checkbox", checked: get(), onchange: (e) => set((e.target as HTMLInputElement).checked) }), " ", label);
  const text = (id: string, label: string, get: () => string, set: (v: string) => void) =>
    h("label", { for: id }, label, h("input", { id, type: "text", value: get(), oninput: (e) => set((e.target as HTMLInputElement).value) }));
  const n = draft.notify;
  const t = S.settings;
  return h("section", { id: "settings" }, h("h1", {}, S.screens.settings),
    h("form", { onsubmit: (e: Event) => { e.preventDefault(); void guard(async () => { await call("save_settings", { settings: draft }); flash(t.saved); }); } },
      h("fieldset", {}, h("legend", {}, t.notifications),
        check("n-credits-low", t.creditsLow, () => n.credits_low, (v) => (n.credits_low = v)),
        text("n-thresholds", t.thresholds, () => n.credit_warn_minutes.join(", "), (v) => {
          n.credit_warn_minutes = v.split(",").map((x) => Number(x.trim())).filter((x) => Number.isFinite(x) && x > 0);
        }),
        check("n-depleted", t.depleted, () => n.credits_depleted, (v) => (n.credits_depleted = v)),
        check("n-quota", t.quota, () => n.quota, (v) => (n.quota = v)),
        check("n-ended", t.ended, () => n.session_ended, (v) => (n.session_ended = v)),
        check("n-connection", t.connection, () => n.connection, (v) => (n.connection = v)),
        check("n-workspace", t.workspaceEnded, () => n.workspace_ended, (v) => (n.workspace_ended = v))),
      h("fieldset", {}, h("legend", {}, t.app),
        check("s-minimized", t.startMinimized, () => draft.start_minimized, (v) => (draft.start_minimized = v)),
        check("s-login", t.launchAtLogin, () => draft.launch_at_login, (v) => (draft.launch_at_login = v)),
        check("s-tray", t.closeToTray, () => draft.close_to_tray, (v) => (draft.close_to_tray = v)),
        check("s-desktop-proxy", t.desktopProxy, () => draft.desktop_proxy, (v) => (draft.desktop_proxy = v)),
        check("s-allow-lan", t.allowLan, () => draft.allow_lan, (v) => (draft.allow_lan = v)),
        h("label", { for: "s-mode" }, t.defaultMode,
          h("select", { id: "s-mode", onchange: (e) => (draft.default_mode = (e.target as HTMLSelectElement).value as TunnelMode) },
            h("option", { value: "app", selected: draft.default_mode === "app" }, S.connect.appMode),
            h("option", { value: "all_traffic", selected: draft.default_mode === "all_traffic" }, S.connect.allTraffic)))),
      h("fieldset", {}, h("legend", {}, t.addresses),
        text("u-orbnet", SERVICE_NAMES.orbnet, () => draft.base_urls.orbnet, (v) => (draft.base_urls.orbnet = v)),
        text("u-tunnelbyte", SERVICE_NAMES.tunnelbyte, () => draft.base_urls.tunnelbyte, (v) => (draft.base_urls.tunnelbyte = v)),
        text("u-neosc", SERVICE_NAMES.neosc, () => draft.base_urls.neosc, (v) => (draft.base_urls.neosc = v))),
      h("button", { type: "submit", id: "save-settings" }, t.save)),
    h("div", { id: "budget-slot" }, budgetSection()),
    aboutSection(s));
}

/** Ferry's own licence and those of the parts it is built on (their names and licences). */
const LICENCES: [string, string][] = S.about.licences;

function aboutSection(_s: Settings): HTMLElement {
  const t = S.about;
  const out = h("textarea", { id: "diagnostics", readonly: true, rows: 8, "aria-label": t.diagnosticsLabel, hidden: true });
  return h("section", { id: "about", class: "card" },
    h("h2", {}, t.title),
    h("p", { id: "about-version" }, t.version(state.snapshot?.version ?? "?")),
    h("table", { id: "licences" }, h("tbody", {}, LICENCES.map(([what, lic]) => h("tr", {}, h("td", {}, what), h("td", {}, lic))))),
    h("p", { class: "caption" }, t.diagnosticsCaption),
    h("button", { id: "copy-diagnostics", type: "button", onclick: () => guard(async () => {
      const text = await call("get_diagnostics");
      out.value = text;
      out.hidden = false;
      try {
        await navigator.clipboard.writeText(text);
        flash(t.copied);
      } catch {
        out.select();
        flash(t.shownBelow);
      }
    }) }, t.copy),
    out);
}

// ---- Shell ---------------------------------------------------------------------------------------

function render(): void {
  const snap = state.snapshot;
  const focused = document.activeElement?.id;
  let screen: HTMLElement;
  if (snap === null) screen = h("p", {}, S.app.starting);
  else if (state.screen === "connect") screen = connectScreen(snap);
  else if (state.screen === "workspaces") screen = workspacesScreen();
  else if (state.screen === "history") screen = historyScreen();
  else if (state.screen === "accounts") screen = accountsScreen();
  else screen = settingsScreen(snap.settings);
  const header = h("header", {}, nav(), snap?.demo ? h("span", { class: "pill demo", id: "demo-badge" }, S.app.demoBadge) : null);
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
  const t = S.close;
  const choice = (id: string, label: string, cls: string, act: () => Promise<unknown>) =>
    h("button", { id, type: "button", class: cls, onclick: () => {
      dialog.close();
      dialog.remove();
      void guard(async () => { await act(); });
    } }, label);
  const dialog = h(
    "dialog",
    { id: "close-dialog", "aria-labelledby": "close-title" },
    h("h2", { id: "close-title" }, t.title),
    h("p", {}, t.body(c?.region_label ?? null)),
    h("div", { class: "actions" },
      choice("close-quit", t.quit, "danger", () => call("quit_app")),
      choice("close-minimize", t.minimize, "", () => call("minimize_window")),
      choice("close-cancel", t.keepOpen, "quiet", async () => undefined)),
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
  await on("ferry:live", (l) => patch((s) => {
    s.live = l;
    if (l?.latency_ms != null && s.connection.region) state.latency.set(view.regionKey(s.connection.region), l.latency_ms);
  }));
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

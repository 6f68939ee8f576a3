// Every user-visible string of the window, in one typed catalogue. A locale is a `Strings` value:
// plain strings, and functions for strings with parameters (they place the parameters, so word
// order is the locale's). `S` is the catalogue in use; a second locale must provide every key.
// Numbers, dates and times are formatted elsewhere (format.ts); strings that come from the
// service (region names, error messages, end labels, quota names) are shown as they arrive.
import type { Phase, Service } from "./contract.gen";

/** The plural forms a string needs; `other` is always there and the fallback. */
export type PluralForms = Partial<Record<Intl.LDMLPluralRule, string>> & { other: string };

const pluralRules = new Map<string, Intl.PluralRules>();

/** The form of `forms` for the count `n` under `locale`'s plural rules (Intl.PluralRules). */
export function plural(locale: string, n: number, forms: PluralForms): string {
  let rules = pluralRules.get(locale);
  if (rules === undefined) {
    rules = new Intl.PluralRules(locale);
    pluralRules.set(locale, rules);
  }
  return forms[rules.select(n)] ?? forms.other;
}

export interface Strings {
  /** BCP 47 tag of the catalogue (its plural rules). */
  locale: string;
  app: {
    name: string;
    navLabel: string;
    /** A screen tab's tooltip with its shortcut. */
    navTitle: (screen: string, key: number) => string;
    demoBadge: string;
    starting: string;
    loading: string;
    /** A figure that is not known. */
    unknown: string;
    /** What a failure without a message says. */
    somethingWentWrong: string;
  };
  screens: { connect: string; workspaces: string; history: string; accounts: string; settings: string };
  services: Record<Service, string>;
  /** Phase names (status line, tray). */
  phases: Record<Phase, string>;
  control: {
    connect: string;
    connecting: string;
    disconnect: string;
    reconnecting: string;
    disconnecting: string;
    tryAgain: string;
    notConnected: string;
    pickRegion: string;
    connectingTo: (place: string) => string;
    connectedTo: (place: string) => string;
    lostConnectionTo: (place: string) => string;
    ending: string;
    stoppedOnError: string;
  };
  connect: {
    region: string;
    chooseRegion: string;
    /** An optgroup's label when its service is not signed in. */
    signInFirst: (service: string) => string;
    /** A region option: favourite star, text, measured latency, cheapest mark. */
    regionChoice: (text: string, favourite: boolean, cheapest: boolean, latencyMs: number | null) => string;
    /** "<who>: <what>" under the region list (a service's error, a region's note). */
    note: (who: string, what: string) => string;
    mode: string;
    appMode: string;
    appModeLong: string;
    allTraffic: string;
    alternatives: string;
    connectTo: (place: string) => string;
    favourite: string;
    addFavourite: string;
  };
  region: {
    /** "<label>, <country>". */
    withCountry: (label: string, country: string) => string;
    nodes: (text: string, n: number) => string;
    unavailable: (text: string) => string;
  };
  welcome: {
    label: string;
    title: string;
    titleDemo: string;
    /** One sentence per service, after its name. */
    services: Record<Service, string>;
    demo: string;
    real: string;
    signIn: string;
    tryDemo: string;
    gotIt: string;
  };
  live: {
    label: string;
    connectedFor: string;
    exitIp: string;
    proxy: string;
    latency: string;
    /** A latency in milliseconds. */
    ms: (ms: number) => string;
    latencyTitle: string;
    allTraffic: string;
    socks: (addr: string) => string;
    http: (addr: string) => string;
    proxyTitle: (addr: string) => string;
    received: string;
    sent: string;
    /** "<bytes> · <rate>". */
    traffic: (bytes: string, rate: string) => string;
    creditsLeft: string;
    burnRate: string;
    perMinute: (credits: string) => string;
    timeLeft: string;
    costSoFar: string;
    credits: (credits: string) => string;
    atThisRate: (duration: string) => string;
    capLeft: (scope: string) => string;
    noLimit: (used: string) => string;
    usedOf: (used: string, limit: string) => string;
    /** A quota's reset, relative then exact. */
    resets: (relative: string, exact: string) => string;
    openBrowser: string;
    browserStarted: (browser: string) => string;
    chartCredits: string;
    chartCost: string;
    chartTraffic: string;
    /** A live chart's caption: what, its range of values and the time it spans. */
    chartCaption: (what: string, low: string, high: string, span: string) => string;
    /** A live chart's tooltip: the newest value. */
    chartNow: (what: string, value: string) => string;
  };
  workspaces: {
    signIn: string;
    starting: (name: string) => string;
    startingOpened: (name: string, url: string) => string;
    launch: string;
    stop: string;
    confirmStop: (name: string) => string;
    sessions: string;
    columns: { workspace: string; type: string; started: string; duration: string; tunnel: string; mfa: string };
    yes: string;
    no: string;
    confirmDisconnect: (workspace: string) => string;
    disconnect: string;
    ended: string;
    refreshed: (when: string) => string;
  };
  history: {
    exportCsv: string;
    saved: (path: string) => string;
    perDay: string;
    dayColumns: { day: string; sessions: string; time: string; credits: string; cost: string; data: string };
    sessions: string;
    noSessions: string;
    rowColumns: { service: string; region: string; start: string; duration: string; used: string; data: string; ended: string };
    credits: (credits: string) => string;
    free: string;
    open: string;
  };
  spend: {
    label: string;
    sessions: (n: number) => string;
    /** A bar's tooltip: "<name>: <what> · <sessions> · <duration> · <data>". */
    tip: (name: string, what: string, sessions: string, duration: string, data: string) => string;
    creditsPerMinute: (credits: string) => string;
    perGib: (money: string) => string;
    perHour: (money: string) => string;
    /** The y axis unit of money charts when the currency is not known. */
    money: string;
    /** The y axis unit of credit charts. */
    creditsUnit: string;
    credits: (credits: string) => string;
    cheapest: string;
    creditsPerDay: string;
    costPerDay: (unit: string) => string;
    creditsPerRegion: string;
    costPerRegion: (unit: string) => string;
    monthCredits: (spent: string, projected: string) => string;
    monthMoney: (spent: string, projected: string) => string;
  };
  accounts: {
    signedIn: string;
    as: (label: string) => string;
    credits: (credits: string) => string;
    signOut: string;
    enterCode: string;
    email: string;
    password: string;
    totp: string;
    signIn: string;
    token: string;
    importCli: string;
    server: string;
    keyring: string;
  };
  budget: {
    fields: { session_credits: string; day_credits: string; month_credits: string; session_money: string; day_money: string; month_money: string };
    loading: string;
    invalid: (field: string) => string;
    saved: string;
    legend: string;
    caption: (currency: string) => string;
    withCurrency: (label: string, currency: string) => string;
    save: string;
  };
  settings: {
    saved: string;
    notifications: string;
    creditsLow: string;
    thresholds: string;
    depleted: string;
    quota: string;
    ended: string;
    connection: string;
    workspaceEnded: string;
    app: string;
    startMinimized: string;
    launchAtLogin: string;
    closeToTray: string;
    desktopProxy: string;
    allowLan: string;
    defaultMode: string;
    addresses: string;
    save: string;
  };
  about: {
    diagnosticsLabel: string;
    title: string;
    version: (version: string) => string;
    /** Ferry's own licence and those of the parts it is built on: [what, licence]. */
    licences: [string, string][];
    diagnosticsCaption: string;
    copied: string;
    shownBelow: string;
    copy: string;
  };
  close: {
    title: string;
    body: (place: string | null) => string;
    quit: string;
    minimize: string;
    keepOpen: string;
  };
  units: {
    /** Byte units, from bytes up: B, KiB, MiB, GiB, TiB, PiB. */
    bytes: [string, string, string, string, string, string];
    /** A number with its unit ("1.5 MiB", "3 h"). */
    amount: (n: string, unit: string) => string;
    perSecond: (amount: string) => string;
    seconds: string;
    minutes: string;
    hours: string;
    days: string;
    /** Two durations side by side ("3 h 12 min"). */
    pair: (a: string, b: string) => string;
    resetsIn: (duration: string) => string;
    resetsNow: string;
    /** A label cut short under a chart bar. */
    truncated: (start: string) => string;
  };
}

const SERVICES: Record<Service, string> = { orbnet: "OrbNET", tunnelbyte: "tunnelbyte", neosc: "NeoSC" };

/** English, the source catalogue. */
export const en: Strings = {
  locale: "en",
  app: {
    name: "Ferry",
    navLabel: "Screens",
    navTitle: (screen, key) => `${screen} (Alt+${key})`,
    demoBadge: "Demo",
    starting: "Starting…",
    loading: "Loading…",
    unknown: "—",
    somethingWentWrong: "Something went wrong.",
  },
  screens: { connect: "Connect", workspaces: "Workspaces", history: "History", accounts: "Accounts", settings: "Settings" },
  services: SERVICES,
  phases: {
    disconnected: "Disconnected",
    connecting: "Connecting",
    connected: "Connected",
    reconnecting: "Reconnecting",
    disconnecting: "Disconnecting",
    error: "Error",
  },
  control: {
    connect: "Connect",
    connecting: "Connecting…",
    disconnect: "Disconnect",
    reconnecting: "Reconnecting…",
    disconnecting: "Disconnecting…",
    tryAgain: "Try again",
    notConnected: "Not connected",
    pickRegion: "Sign in and pick a region to connect",
    connectingTo: (place) => `Connecting to ${place}. Click to cancel.`,
    connectedTo: (place) => `Connected to ${place}`,
    lostConnectionTo: (place) => `Connection to ${place} lost; trying again. Click to stop.`,
    ending: "Ending the session",
    stoppedOnError: "The connection stopped on an error",
  },
  connect: {
    region: "Region",
    chooseRegion: "Choose a region…",
    signInFirst: (service) => `${service} (sign in first)`,
    regionChoice: (text, favourite, cheapest, latencyMs) =>
      `${favourite ? "★ " : ""}${text}${latencyMs === null ? "" : ` · ${latencyMs} ms`}${cheapest ? " · cheapest so far" : ""}`,
    note: (who, what) => `${who}: ${what}`,
    mode: "Mode",
    appMode: "App mode",
    appModeLong: "App mode (local proxy)",
    allTraffic: "Route all traffic",
    alternatives: "Regions with capacity",
    connectTo: (place) => `Connect to ${place}`,
    favourite: "★ Favourite",
    addFavourite: "☆ Add to favourites",
  },
  region: {
    withCountry: (label, country) => `${label}, ${country}`,
    nodes: (text, n) => `${text} · ${n} ${plural("en", n, { one: "node", other: "nodes" })}`,
    unavailable: (text) => `${text} (unavailable)`,
  },
  welcome: {
    label: "Welcome",
    title: "Welcome to Ferry",
    titleDemo: "Welcome to the Ferry demo",
    services: {
      orbnet: "pays by the minute in credits: Ferry shows them burning and the time left.",
      tunnelbyte: "charges for time and data against two quota windows; Ferry shows the cost and when each window resets.",
      neosc: "runs remote workspaces on your own server: launch one, see your sessions, disconnect them.",
    },
    demo: "This demo runs all three on a local lab with test accounts: a region is chosen, so Connect is one click. Nothing is billed.",
    real: "Sign in to any of them to connect, or try everything first on a local lab.",
    signIn: "Sign in",
    tryDemo: "Try the demo",
    gotIt: "Got it",
  },
  live: {
    label: "Live session",
    connectedFor: "Connected for",
    exitIp: "Exit IP",
    proxy: "Proxy for apps",
    latency: "Latency",
    ms: (ms) => `${ms} ms`,
    latencyTitle: "Round trip of the last WireGuard handshake with the exit",
    allTraffic: "All traffic",
    socks: (addr) => `SOCKS5 ${addr}`,
    http: (addr) => ` · HTTP ${addr}`,
    proxyTitle: (addr) => `Point apps at socks5h://${addr}`,
    received: "Received",
    sent: "Sent",
    traffic: (bytes, rate) => `${bytes} · ${rate}`,
    creditsLeft: "Credits left",
    burnRate: "Burn rate",
    perMinute: (credits) => `${credits} credits/min`,
    timeLeft: "Time left at this rate",
    costSoFar: "Cost so far",
    credits: (credits) => `${credits} credits`,
    atThisRate: (duration) => ` · ${duration} at this rate`,
    capLeft: (scope) => `Left of your ${scope} cap`,
    noLimit: (used) => `${used} (no limit)`,
    usedOf: (used, limit) => `${used} of ${limit}`,
    resets: (relative, exact) => `${relative} (${exact})`,
    openBrowser: "Open a browser through Ferry",
    browserStarted: (browser) => `Started ${browser} in its own profile, browsing through Ferry.`,
    chartCredits: "Credits left",
    chartCost: "Cost",
    chartTraffic: "Traffic",
    chartCaption: (what, low, high, span) => `${what}: ${low} – ${high} over ${span}`,
    chartNow: (what, value) => `${what} now: ${value}`,
  },
  workspaces: {
    signIn: "Sign in to NeoSC on the Accounts screen.",
    starting: (name) => `${name} is starting; the server gave no viewer address to open.`,
    startingOpened: (name, url) => `${name} is starting; opened it in your browser (${url}).`,
    launch: "Launch",
    stop: "Stop",
    confirmStop: (name) => `Stop ${name}? Its session ends.`,
    sessions: "Sessions",
    columns: { workspace: "Workspace", type: "Type", started: "Started", duration: "Duration", tunnel: "Tunnel", mfa: "MFA" },
    yes: "yes",
    no: "no",
    confirmDisconnect: (workspace) => `Disconnect the session on ${workspace}?`,
    disconnect: "Disconnect",
    ended: "ended",
    refreshed: (when) => `Refreshed ${when}; every 30 s.`,
  },
  history: {
    exportCsv: "Export CSV",
    saved: (path) => `Saved ${path}`,
    perDay: "Per day",
    dayColumns: { day: "Day", sessions: "Sessions", time: "Time", credits: "Credits", cost: "Cost", data: "Data" },
    sessions: "Sessions",
    noSessions: "No sessions yet.",
    rowColumns: { service: "Service", region: "Region", start: "Start", duration: "Duration", used: "Used", data: "Data", ended: "Ended" },
    credits: (credits) => `${credits} credits`,
    free: "free",
    open: "open",
  },
  spend: {
    label: "Spending",
    sessions: (n) => `${n} ${plural("en", n, { one: "session", other: "sessions" })}`,
    tip: (name, what, sessions, duration, data) => `${name}: ${what} · ${sessions} · ${duration} · ${data}`,
    creditsPerMinute: (credits) => ` · ${credits} credits/min`,
    perGib: (money) => ` · ${money}/GiB`,
    perHour: (money) => ` · ${money}/h`,
    money: "money",
    creditsUnit: "credits",
    credits: (credits) => `${credits} credits`,
    cheapest: " · cheapest",
    creditsPerDay: "OrbNET credits per day",
    costPerDay: (unit) => `tunnelbyte cost per day (${unit})`,
    creditsPerRegion: "OrbNET credits per region",
    costPerRegion: (unit) => `tunnelbyte cost per region (${unit})`,
    monthCredits: (spent, projected) => `OrbNET this month: ${spent} credits so far; about ${projected} by the month's end at this pace.`,
    monthMoney: (spent, projected) => `tunnelbyte this month: ${spent} so far; about ${projected} by the month's end at this pace.`,
  },
  accounts: {
    signedIn: "Signed in",
    as: (label) => ` as ${label}`,
    credits: (credits) => ` · ${credits} credits`,
    signOut: "Sign out",
    enterCode: "Enter the 6-digit code from your authenticator app.",
    email: "Email",
    password: "Password",
    totp: "2FA code",
    signIn: "Sign in",
    token: "API token",
    importCli: "Import from the tunnelbyte CLI",
    server: "Server address (https://…)",
    keyring: "Tokens are kept in the system keyring, never on disk.",
  },
  budget: {
    fields: {
      session_credits: "OrbNET credits per session",
      day_credits: "OrbNET credits per day",
      month_credits: "OrbNET credits per month",
      session_money: "tunnelbyte money per session",
      day_money: "tunnelbyte money per day",
      month_money: "tunnelbyte money per month",
    },
    loading: "Loading spend caps…",
    invalid: (field) => `${field}: enter a positive number, or leave it empty for no cap.`,
    saved: "Spend caps saved: the next session honours them.",
    legend: "Spend caps",
    caption: (currency) =>
      `Ferry ends the session before the next charge would pass a cap; days and months are local time. Money in ${currency}. Empty: no cap.`,
    withCurrency: (label, currency) => `${label} (${currency})`,
    save: "Save caps",
  },
  settings: {
    saved: "Settings saved.",
    notifications: "Notifications",
    creditsLow: "Credits low",
    thresholds: "Warn when credits last under (minutes, comma-separated)",
    depleted: "Credits depleted",
    quota: "Quota at 80 %, 95 % and exceeded",
    ended: "Session ended by the service",
    connection: "Connection lost and restored",
    workspaceEnded: "Workspace session ended elsewhere",
    app: "App",
    startMinimized: "Start minimized",
    launchAtLogin: "Launch at login",
    closeToTray: "Closing the window keeps Ferry in the tray",
    desktopProxy: "Send this desktop's apps through Ferry (GNOME proxy settings, while connected in app mode; yours come back on disconnect)",
    allowLan: "In All traffic mode, let the local network (printers, file shares) through while the kill switch blocks; DNS still goes only through the tunnel",
    defaultMode: "Default mode",
    addresses: "Service addresses",
    save: "Save",
  },
  about: {
    diagnosticsLabel: "Diagnostics report",
    title: "About Ferry",
    version: (version) => `Version ${version}`,
    licences: [
      ["Ferry", "MIT OR Apache-2.0"],
      ["Tauri", "MIT OR Apache-2.0"],
      ["boringtun (WireGuard)", "BSD-3-Clause"],
      ["smoltcp (app mode's TCP/IP stack)", "0BSD"],
      ["tokio, hyper, reqwest, rustls", "MIT OR Apache-2.0"],
      ["sqlx + SQLite", "MIT OR Apache-2.0 / public domain"],
      ["WebKitGTK", "LGPL-2.1-or-later, BSD-2-Clause"],
    ],
    diagnosticsCaption:
      "The diagnostics report holds versions, the connection state, settings, spend caps and the last 200 log lines; tokens, keys, emails and ids are removed.",
    copied: "Diagnostics copied to the clipboard.",
    shownBelow: "Diagnostics shown below: select them and copy.",
    copy: "Copy diagnostics",
  },
  close: {
    title: "Ferry is still connected",
    body: (place) =>
      `You are connected${place ? ` to ${place}` : ""} and the session is metered. No tray icon is shown on this desktop, so a hidden Ferry would keep billing unseen.`,
    quit: "Disconnect and quit",
    minimize: "Minimize",
    keepOpen: "Keep open",
  },
  units: {
    bytes: ["B", "KiB", "MiB", "GiB", "TiB", "PiB"],
    amount: (n, unit) => `${n} ${unit}`,
    perSecond: (amount) => `${amount}/s`,
    seconds: "s",
    minutes: "min",
    hours: "h",
    days: "d",
    pair: (a, b) => `${a} ${b}`,
    resetsIn: (duration) => `resets in ${duration}`,
    resetsNow: "resets now",
    truncated: (start) => `${start}…`,
  },
};

/** The catalogue the window uses. */
export const S: Strings = en;

// Pure view state: what each screen shows for a given state. Rendering (main.ts) only draws these.
import type {
  ConnectionView,
  LiveView,
  Phase,
  QuotaView,
  RegionView,
  RegionGroup,
  RegionRef,
  WorkspaceSessionView,
} from "./contract.gen";
import * as fmt from "./format";
import { S } from "./strings";

/** The big Connect control for a phase. */
export interface ConnectControl {
  label: string;
  action: "connect" | "disconnect" | "none";
  enabled: boolean;
  busy: boolean;
  /** One line under the button. */
  caption: string;
}

/** What the Connect control shows and does. `canConnect` = a region is chosen and its service signed in. */
export function connectControl(c: ConnectionView, canConnect: boolean): ConnectControl {
  const where = c.region_label ?? c.region?.id ?? "";
  const t = S.control;
  const table: Record<Phase, ConnectControl> = {
    disconnected: {
      label: t.connect,
      action: "connect",
      enabled: canConnect,
      busy: false,
      caption: canConnect ? t.notConnected : t.pickRegion,
    },
    connecting: { label: t.connecting, action: "disconnect", enabled: true, busy: true, caption: t.connectingTo(where) },
    connected: { label: t.disconnect, action: "disconnect", enabled: true, busy: false, caption: t.connectedTo(where) },
    reconnecting: { label: t.reconnecting, action: "disconnect", enabled: true, busy: true, caption: t.lostConnectionTo(where) },
    disconnecting: { label: t.disconnecting, action: "none", enabled: false, busy: true, caption: t.ending },
    error: {
      label: t.tryAgain,
      action: "connect",
      enabled: canConnect,
      busy: false,
      // The error box under the button says what happened; the caption does not repeat it.
      caption: c.error ? t.notConnected : t.stoppedOnError,
    },
  };
  return table[c.phase];
}

/** Human name of a phase (for the status line and the tray). */
export function phaseName(p: Phase): string {
  return S.phases[p];
}

/** The text of a region option ("Paris, France", "eu-1 · 3 nodes", with "unavailable" when so). */
export function regionOption(r: RegionView): string {
  let text = r.label;
  if (r.country) text = S.region.withCountry(text, r.country);
  if (r.nodes !== null) text = S.region.nodes(text, r.nodes);
  if (!r.available) text = S.region.unavailable(text);
  return text;
}

/** Stable key of a region for a select's value. */
export function regionKey(r: RegionRef): string {
  return `${r.service}/${r.id}`;
}

/** Finds a region by key in the groups. */
/**
 * The region to preselect: the remembered one while it is listed, else the first available one
 * of a signed-in service (so the demo connects in one click); "" when there is none.
 */
export function defaultRegion(groups: RegionGroup[], remembered: string, signedIn: (s: RegionGroup["service"]) => boolean): string {
  if (remembered !== "" && findRegion(groups, remembered) !== undefined) return remembered;
  for (const g of groups) {
    if (g.service === "neosc" || !signedIn(g.service)) continue;
    const r = g.regions.find((x) => x.available);
    if (r) return regionKey(r.ref);
  }
  return remembered;
}

/** Each service's regions with the favourites first (in their listed order otherwise). */
export function favouritesFirst(groups: RegionGroup[], favourites: ReadonlySet<string>): RegionGroup[] {
  return groups.map((g) => ({
    ...g,
    regions: [...g.regions].sort((a, b) => Number(favourites.has(regionKey(b.ref))) - Number(favourites.has(regionKey(a.ref)))),
  }));
}

export function findRegion(groups: RegionGroup[], key: string): RegionView | undefined {
  for (const g of groups) for (const r of g.regions) if (regionKey(r.ref) === key) return r;
  return undefined;
}

/** One figure of the live panel. */
export interface Figure {
  id: string;
  label: string;
  value: string;
  title?: string;
}

/** The live panel's figures for a moment `nowMs`. */
export function liveFigures(live: LiveView, nowMs: number): Figure[] {
  const t = S.live;
  const figures: Figure[] = [
    { id: "duration", label: t.connectedFor, value: fmt.clock((nowMs - live.started_ms) / 1000) },
    { id: "exit-ip", label: t.exitIp, value: live.exit_ip ?? S.app.unknown },
    {
      id: "latency",
      label: t.latency,
      value: live.latency_ms === null ? S.app.unknown : t.ms(live.latency_ms),
      title: t.latencyTitle,
    },
    {
      id: "proxy",
      label: t.proxy,
      value: live.proxy === null ? t.allTraffic : t.socks(live.proxy) + (live.http_proxy === null ? "" : t.http(live.http_proxy)),
      title: live.proxy === null ? undefined : t.proxyTitle(live.proxy),
    },
    { id: "bytes-in", label: t.received, value: t.traffic(fmt.bytes(live.bytes_in), fmt.rate(live.rate_in)) },
    { id: "bytes-out", label: t.sent, value: t.traffic(fmt.bytes(live.bytes_out), fmt.rate(live.rate_out)) },
  ];
  const m = live.meter;
  if (m.kind === "credits") {
    const left = fmt.minutesLeft(m.left, m.burn_per_minute);
    figures.push(
      { id: "credits-left", label: t.creditsLeft, value: fmt.credits(m.left) },
      { id: "burn-rate", label: t.burnRate, value: t.perMinute(fmt.credits(m.burn_per_minute)) },
      {
        id: "time-left",
        label: t.timeLeft,
        value: left === null ? S.app.unknown : fmt.duration(left * 60),
      },
    );
  } else if (m.cost_millicents !== null) {
    figures.push({ id: "cost", label: t.costSoFar, value: fmt.money(m.cost_millicents, m.currency) });
  }
  const cap = live.cap;
  if (cap !== null) {
    const spent = m.kind === "credits" ? m.spent : (m.cost_millicents ?? 0);
    const left = Math.max(0, cap.left_at_start - spent);
    const perMinute = m.kind === "credits" ? m.burn_per_minute : meterPerMinute(live.samples);
    const amount = cap.unit === "credits" ? t.credits(fmt.credits(left)) : fmt.money(left, m.kind === "quota" ? m.currency : null);
    const time = perMinute > 0 ? t.atThisRate(fmt.duration((left / perMinute) * 60)) : "";
    figures.push({ id: "cap-left", label: t.capLeft(cap.scope), value: amount + time });
  }
  return figures;
}

/** How fast the meter (tunnelbyte cost) rose over the last minute of samples, per minute. */
export function meterPerMinute(samples: { at_ms: number; meter: number }[]): number {
  const last = samples[samples.length - 1];
  if (last === undefined) return 0;
  const first = samples.find((s) => last.at_ms - s.at_ms <= 60_000) ?? samples[0]!;
  const minutes = (last.at_ms - first.at_ms) / 60_000;
  return minutes > 0 ? Math.max(0, (last.meter - first.meter) / minutes) : 0;
}

/** One quota bar. */
export interface QuotaBar {
  label: string;
  text: string;
  percent: number | null;
  level: "ok" | "warn" | "high" | "full";
  resets: string;
  resetsExact: string;
}

/** The quota bars for the tunnelbyte windows. */
export function quotaBars(quotas: QuotaView[], nowMs: number): QuotaBar[] {
  return quotas.map((q) => {
    const show = (n: number) => (q.unit === "bytes" ? fmt.bytes(n) : fmt.duration(n));
    const pct = fmt.percent(q.used, q.limit);
    const level = pct === null ? "ok" : pct >= 100 ? "full" : pct >= 95 ? "high" : pct >= 80 ? "warn" : "ok";
    return {
      label: q.label,
      text: q.limit === null ? S.live.noLimit(show(q.used)) : S.live.usedOf(show(q.used), show(q.limit)),
      percent: pct,
      level,
      resets: q.resets_at_ms === null ? "" : fmt.resetsIn(q.resets_at_ms, nowMs),
      resetsExact: q.resets_at_ms === null ? "" : fmt.dateTime(q.resets_at_ms),
    };
  });
}

/** Workspace sessions with the active ones first, then newest first. */
export function sortSessions(sessions: WorkspaceSessionView[]): WorkspaceSessionView[] {
  return [...sessions].sort((a, b) => Number(b.active) - Number(a.active) || b.started_ms - a.started_ms);
}

/** An SVG polyline's points for a small chart of `values`, in a `w`×`h` box. */
export function sparkline(values: number[], w: number, h: number): string {
  if (values.length === 0) return "";
  const min = Math.min(...values);
  const max = Math.max(...values);
  const span = max - min || 1;
  const step = values.length > 1 ? w / (values.length - 1) : 0;
  return values
    .map((v, i) => `${(i * step).toFixed(1)},${(h - ((v - min) / span) * h).toFixed(1)}`)
    .join(" ");
}

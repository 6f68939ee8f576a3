import { describe, expect, it } from "vitest";
import type { ConnectionView, LiveView, Phase, WorkspaceSessionView } from "./contract.gen";
import { connectControl, defaultRegion, favouritesFirst, liveFigures, quotaBars, regionOption, sortSessions, sparkline } from "./view";

function conn(phase: Phase): ConnectionView {
  return {
    phase,
    region: { service: "orbnet", id: "srv-1" },
    region_label: "Paris",
    mode: "app",
    error: phase === "error" ? { code: "credits_depleted", message: "Credits ran out", action: "Top up", alternatives: [] } : null,
    since_ms: 0,
  };
}

describe("connect control", () => {
  it.each([
    ["disconnected", true, "Connect", "connect", true],
    ["disconnected", false, "Connect", "connect", false],
    ["connecting", true, "Connecting…", "disconnect", true],
    ["connected", true, "Disconnect", "disconnect", true],
    ["reconnecting", true, "Reconnecting…", "disconnect", true],
    ["disconnecting", true, "Disconnecting…", "none", false],
    ["error", true, "Try again", "connect", true],
  ] as const)("%s (can connect: %s)", (phase, can, label, action, enabled) => {
    const c = connectControl(conn(phase), can);
    expect([c.label, c.action, c.enabled]).toEqual([label, action, enabled]);
  });
  it("error caption does not repeat the cause the error box shows", () => {
    expect(connectControl(conn("error"), true).caption).toBe("Not connected");
  });
});

describe("live panel", () => {
  const base: LiveView = {
    started_ms: 0,
    at_ms: 0,
    exit_ip: "198.51.100.7",
    proxy: "127.0.0.1:1080",
    http_proxy: "127.0.0.1:1081",
    latency_ms: 12,
    bytes_in: 2048,
    bytes_out: 0,
    rate_in: 1024,
    rate_out: 0,
    meter: { kind: "credits", left: 10, burn_per_minute: 0.5, spent: 2 },
    samples: [],
    cap: null,
  };
  it("credits: left, burn, time left", () => {
    const f = Object.fromEntries(liveFigures(base, 65_000).map((x) => [x.id, x.value]));
    expect(f["duration"]).toBe("0:01:05");
    expect(f["credits-left"]).toBe("10");
    expect(f["time-left"]).toBe("20 min");
    expect(f["bytes-in"]).toBe("2.0 KiB · 1.0 KiB/s");
    expect(f["latency"]).toBe("12 ms");
    const unmeasured = liveFigures({ ...base, latency_ms: null }, 0).find((x) => x.id === "latency");
    expect(unmeasured?.value).toBe("—");
  });
  it("what is left of the tightest cap, and the time to it at the burn rate", () => {
    const none = liveFigures(base, 0);
    expect(none.find((x) => x.id === "cap-left")).toBeUndefined();
    const capped = liveFigures({ ...base, cap: { scope: "day", limit: 20, left_at_start: 7, unit: "credits", resets_at_ms: null } }, 0);
    const f = capped.find((x) => x.id === "cap-left");
    expect(f?.label).toBe("Left of your day cap");
    expect(f?.value).toBe("5 credits · 10 min at this rate");
    const money = liveFigures({
      ...base,
      meter: { kind: "quota", cost_millicents: 20_000, currency: "usd", quotas: [] },
      samples: [{ at_ms: 0, meter: 10_000, bytes: 0 }, { at_ms: 60_000, meter: 20_000, bytes: 0 }],
      cap: { scope: "session", limit: 50_000, left_at_start: 50_000, unit: "millicents", resets_at_ms: null },
    }, 60_000).find((x) => x.id === "cap-left");
    expect(money?.value).toBe("$0.300 · 3 min at this rate");
  });
  it("cost for paid tunnelbyte, none for free", () => {
    const paid = liveFigures({ ...base, meter: { kind: "quota", cost_millicents: 4200, currency: "eur", quotas: [] } }, 0);
    expect(paid.find((x) => x.id === "cost")?.value).toBe("€0.042");
    const free = liveFigures({ ...base, meter: { kind: "quota", cost_millicents: null, currency: null, quotas: [] } }, 0);
    expect(free.find((x) => x.id === "cost")).toBeUndefined();
  });
  it("quota bars with levels and reset text", () => {
    const now = 0;
    const bars = quotaBars(
      [
        { label: "Data today", unit: "bytes", used: 850, limit: 1000, resets_at_ms: (3 * 3600 + 12 * 60) * 1000, },
        { label: "Time today", unit: "seconds", used: 3600, limit: 3600, resets_at_ms: null },
        { label: "Data", unit: "bytes", used: 10, limit: null, resets_at_ms: null },
      ],
      now,
    );
    expect(bars.map((b) => b.level)).toEqual(["warn", "full", "ok"]);
    expect(bars[0]!.resets).toBe("resets in 3 h 12 min");
    expect(bars[1]!.text).toBe("1 h of 1 h");
    expect(bars[2]!.percent).toBeNull();
  });
});

describe("lists", () => {
  it("active sessions first, then newest", () => {
    const s = (id: string, active: boolean, started_ms: number): WorkspaceSessionView => ({
      id, workspace: "w", kind: "desktop", started_ms, ended_ms: null, active, tunnel: "up", mfa: true,
    });
    const order = sortSessions([s("a", false, 3), s("b", true, 1), s("c", false, 5), s("d", true, 2)]).map((x) => x.id);
    expect(order).toEqual(["d", "b", "c", "a"]);
  });
  it("region options explain themselves", () => {
    const r = { ref: { service: "tunnelbyte" as const, id: "eu-1" }, label: "eu-1", country: null, nodes: 1, available: false, note: "no active node" };
    expect(regionOption(r)).toBe("eu-1 · 1 node (unavailable)");
  });
  it("sparkline spans the box", () => {
    expect(sparkline([0, 5, 10], 100, 20)).toBe("0.0,20.0 50.0,10.0 100.0,0.0");
    expect(sparkline([], 10, 10)).toBe("");
  });
});

describe("preselected region", () => {
  const groups = [
    { service: "orbnet" as const, error: null, regions: [
      { ref: { service: "orbnet" as const, id: "101" }, label: "New York", country: "US", nodes: null, available: false, note: "busy" },
      { ref: { service: "orbnet" as const, id: "102" }, label: "Frankfurt", country: "DE", nodes: null, available: true, note: null },
    ] },
    { service: "tunnelbyte" as const, error: null, regions: [
      { ref: { service: "tunnelbyte" as const, id: "fsn" }, label: "fsn", country: null, nodes: 2, available: true, note: null },
    ] },
  ];
  it("keeps a remembered region that is listed", () => {
    expect(defaultRegion(groups, "tunnelbyte/fsn", () => true)).toBe("tunnelbyte/fsn");
  });
  it("else the first available region of a signed-in service", () => {
    expect(defaultRegion(groups, "", () => true)).toBe("orbnet/102");
    expect(defaultRegion(groups, "", (s) => s === "tunnelbyte")).toBe("tunnelbyte/fsn");
    expect(defaultRegion(groups, "", () => false)).toBe("");
  });
});

describe("favourites", () => {
  it("puts a service's favourite regions first, keeping the listed order otherwise", () => {
    const r = (id: string) => ({ ref: { service: "tunnelbyte" as const, id }, label: id, country: null, nodes: null, available: true, note: null });
    const groups = [{ service: "tunnelbyte" as const, error: null, regions: [r("a"), r("b"), r("c")] }];
    const out = favouritesFirst(groups, new Set(["tunnelbyte/c"]));
    expect(out[0]!.regions.map((x) => x.ref.id)).toEqual(["c", "a", "b"]);
    expect(groups[0]!.regions.map((x) => x.ref.id)).toEqual(["a", "b", "c"]);
  });
});

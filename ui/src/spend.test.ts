import { describe, expect, it } from "vitest";
import type { InsightView, RegionGroup, SpendRow } from "./contract.gen";
import { budgetForm, isCheapest, monthLines, parseBudget, placeName, spendCharts, withEmptyDays } from "./spend";

const row = (over: Partial<SpendRow>): SpendRow => ({
  key: "k", label: "k", service: null, region: null, sessions: 1, duration_s: 600, credits: 0,
  cost_millicents: 0, currency: null, bytes: 0, credits_per_minute: null, millicents_per_gib: null,
  millicents_per_hour: null, ...over,
});

const insight: InsightView = {
  by_day: [
    row({ key: "2026-12-08", label: "2026-12-08", credits: 15, cost_millicents: 30_000, currency: "usd" }),
    row({ key: "2026-12-09", label: "2026-12-09", credits: 10 }),
  ],
  by_region: [
    row({ key: "orbnet:server 101", label: "server 101", service: "orbnet", region: { service: "orbnet", id: "101" }, credits: 15, credits_per_minute: 1.5 }),
    row({ key: "orbnet:server 102", label: "server 102", service: "orbnet", region: { service: "orbnet", id: "102" }, credits: 10, credits_per_minute: 1 }),
    row({ key: "tunnelbyte:fsn", label: "fsn", service: "tunnelbyte", region: { service: "tunnelbyte", id: "fsn" }, cost_millicents: 30_000, currency: "usd", millicents_per_gib: 30_000 }),
  ],
  month: [
    { service: "orbnet", month: "2026-12", spent_credits: 25, spent_millicents: 0, currency: null, projected_credits: 81.6, projected_millicents: 0, days_elapsed: 9.5, days_in_month: 31 },
    { service: "tunnelbyte", month: "2026-12", spent_credits: 0, spent_millicents: 30_000, currency: "usd", projected_credits: 0, projected_millicents: 97_895, days_elapsed: 9.5, days_in_month: 31 },
  ],
  cheapest: ["orbnet:server 102"],
  cheapest_regions: [{ service: "orbnet", id: "102" }],
};

const regions: RegionGroup[] = [{
  service: "orbnet", error: null,
  regions: [{ ref: { service: "orbnet", id: "102" }, label: "Frankfurt", country: "DE", nodes: null, available: true, note: null }],
}];

describe("spendCharts", () => {
  it("charts credits and money per day and per region, in the service's currency, cheapest highlighted", () => {
    const charts = spendCharts(insight, regions);
    expect(charts.map((c) => c.id)).toEqual(["chart-day-credits", "chart-day-money", "chart-region-credits", "chart-region-money"]);
    const [dayCredits, dayMoney, regionCredits, regionMoney] = charts;
    expect(dayCredits!.bars.map((b) => [b.label, b.value])).toEqual([["12-08", 15], ["12-09", 10]]);
    expect(dayMoney!.unit).toBe("USD");
    expect(dayMoney!.format(30_000)).toBe("$0.300");
    expect(regionCredits!.bars.map((b) => b.label)).toEqual(["server 101", "Frankfurt"]);
    expect(regionCredits!.bars.map((b) => b.highlight)).toEqual([false, true]);
    expect(regionCredits!.bars[1]!.tooltip).toContain("1 credits/min");
    expect(regionCredits!.bars[1]!.tooltip).toContain("cheapest");
    expect(regionMoney!.bars[0]!.tooltip).toContain("$0.300/GiB");
  });
  it("draws nothing for an empty history", () => {
    expect(spendCharts({ by_day: [], by_region: [], month: [], cheapest: [], cheapest_regions: [] }, [])).toEqual([]);
  });
});

describe("placeName", () => {
  it("names a history row's region as the region list does, else as stored", () => {
    expect(placeName({ region: "server 102", region_ref: { service: "orbnet", id: "102" } }, regions)).toBe("Frankfurt");
    expect(placeName({ region: "server 9", region_ref: { service: "orbnet", id: "9" } }, regions)).toBe("server 9");
    expect(placeName({ region: "fsn", region_ref: null }, regions)).toBe("fsn");
  });
});

describe("withEmptyDays", () => {
  it("fills the days without sessions between the first and the last", () => {
    const rows = [row({ key: "2026-11-29", label: "2026-11-29", credits: 1 }), row({ key: "2026-12-02", label: "2026-12-02", credits: 2 })];
    const out = withEmptyDays(rows);
    expect(out.map((r) => r.key)).toEqual(["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]);
    expect(out[1]!.sessions).toBe(0);
    expect(out[3]!.credits).toBe(2);
  });
});

describe("month and cheapest", () => {
  it("says this month's spend and projection per service", () => {
    const [orb, tb] = monthLines(insight);
    expect(orb).toContain("25 credits so far");
    expect(orb).toContain("about 82 by the month's end");
    expect(tb).toContain("$0.300 so far");
    expect(tb).toContain("$0.979");
  });
  it("marks only the measured cheapest region", () => {
    expect(isCheapest(insight, { service: "orbnet", id: "102" })).toBe(true);
    expect(isCheapest(insight, { service: "orbnet", id: "101" })).toBe(false);
    expect(isCheapest(null, { service: "orbnet", id: "102" })).toBe(false);
  });
});

describe("budget form", () => {
  it("round-trips credits and money (currency units ↔ millicents)", () => {
    const b = { session_credits: 50, day_credits: null, month_credits: 900, session_millicents: 250_000, day_millicents: null, month_millicents: 1_000_000 };
    const f = budgetForm(b);
    expect(f.session_money).toBe("2.5");
    expect(f.day_credits).toBe("");
    expect(parseBudget(f)).toEqual(b);
    expect(parseBudget({ ...f, day_money: "0,75" })).toEqual({ ...b, day_millicents: 75_000 });
  });
  it("names the first field that is not a positive number", () => {
    const f = budgetForm({ session_credits: null, day_credits: null, month_credits: null, session_millicents: null, day_millicents: null, month_millicents: null });
    expect(parseBudget({ ...f, day_credits: "-3" })).toEqual({ invalid: "day_credits" });
    expect(parseBudget({ ...f, month_money: "lots" })).toEqual({ invalid: "month_money" });
  });
});

// The spend views: history charts per day and per region (cheapest highlighted), this month's
// projection in words, and the budget form's conversion between currency units and millicents.

import type { BarChartSpec } from "./chart";
import type { Budget, InsightView, RegionGroup, RegionRef, SpendRow } from "./contract.gen";
import * as fmt from "./format";
import { S } from "./strings";
import { findRegion, regionKey } from "./view";

/** Days shown in the per-day charts. */
export const CHART_DAYS = 30;
const MILLICENTS_PER_UNIT = 100_000;

/** A history row's region by its current name in the region list, else as stored. */
export function placeName(row: { region: string; region_ref: RegionRef | null }, regions: RegionGroup[]): string {
  const r = row.region_ref ? findRegion(regions, regionKey(row.region_ref)) : undefined;
  return r?.label ?? row.region;
}

/** The region's current name from the region list, else the history's location. */
export function regionName(row: SpendRow, regions: RegionGroup[]): string {
  const r = row.region ? findRegion(regions, regionKey(row.region)) : undefined;
  return r?.label ?? row.label;
}

function rowTip(name: string, row: SpendRow, what: string): string {
  return S.spend.tip(name, what, S.spend.sessions(row.sessions), fmt.duration(row.duration_s), fmt.bytes(row.bytes));
}

function rate(row: SpendRow, currency: string | null): string {
  if (row.credits_per_minute !== null) return S.spend.creditsPerMinute(fmt.credits(row.credits_per_minute));
  if (row.millicents_per_gib !== null) return S.spend.perGib(fmt.money(row.millicents_per_gib, currency));
  if (row.millicents_per_hour !== null) return S.spend.perHour(fmt.money(row.millicents_per_hour, currency));
  return "";
}

/** The days between the first and the last with spend, those without any as empty rows. */
export function withEmptyDays(rows: SpendRow[]): SpendRow[] {
  if (rows.length < 2) return rows;
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const day = (k: string) => Date.UTC(Number(k.slice(0, 4)), Number(k.slice(5, 7)) - 1, Number(k.slice(8, 10)));
  const first = day(rows[0]!.key);
  const last = day(rows[rows.length - 1]!.key);
  if (!(last >= first) || (last - first) / 86_400_000 > 366) return rows;
  const out: SpendRow[] = [];
  for (let t = first; t <= last; t += 86_400_000) {
    const key = new Date(t).toISOString().slice(0, 10);
    out.push(byKey.get(key) ?? {
      key, label: key, service: null, region: null, sessions: 0, duration_s: 0, credits: 0, cost_millicents: 0,
      currency: null, bytes: 0, credits_per_minute: null, millicents_per_gib: null, millicents_per_hour: null,
    });
  }
  return out;
}

/** The charts of the history screen: credits and money per day, then per region. */
export function spendCharts(v: InsightView, regions: RegionGroup[]): BarChartSpec[] {
  const currency = [...v.by_day, ...v.by_region].find((r) => r.currency !== null)?.currency ?? null;
  const t = S.spend;
  const unit = (currency ?? "").toUpperCase() || t.money;
  const money = (mc: number) => fmt.money(mc, currency);
  const days = withEmptyDays(v.by_day).slice(-CHART_DAYS);
  const charts: BarChartSpec[] = [];
  if (days.some((d) => d.credits > 0)) {
    charts.push({
      id: "chart-day-credits", title: t.creditsPerDay, unit: t.creditsUnit, format: fmt.credits,
      bars: days.map((d) => ({ label: d.label.slice(5), value: d.credits, tooltip: rowTip(d.label, d, t.credits(fmt.credits(d.credits))) })),
    });
  }
  if (days.some((d) => d.cost_millicents > 0)) {
    charts.push({
      id: "chart-day-money", title: t.costPerDay(unit), unit, format: money,
      bars: days.map((d) => ({ label: d.label.slice(5), value: d.cost_millicents, tooltip: rowTip(d.label, d, money(d.cost_millicents)) })),
    });
  }
  const cheap = new Set(v.cheapest);
  const orb = v.by_region.filter((r) => r.service === "orbnet" && r.credits > 0);
  if (orb.length > 0) {
    charts.push({
      id: "chart-region-credits", title: t.creditsPerRegion, unit: t.creditsUnit, format: fmt.credits,
      bars: orb.map((r) => {
        const name = regionName(r, regions);
        const mark = cheap.has(r.key) ? t.cheapest : "";
        return { label: name, value: r.credits, highlight: cheap.has(r.key), tooltip: rowTip(name, r, t.credits(fmt.credits(r.credits)) + rate(r, currency) + mark) };
      }),
    });
  }
  const tb = v.by_region.filter((r) => r.service === "tunnelbyte" && r.cost_millicents > 0);
  if (tb.length > 0) {
    charts.push({
      id: "chart-region-money", title: t.costPerRegion(unit), unit, format: money,
      bars: tb.map((r) => {
        const name = regionName(r, regions);
        const mark = cheap.has(r.key) ? t.cheapest : "";
        return { label: name, value: r.cost_millicents, highlight: cheap.has(r.key), tooltip: rowTip(name, r, money(r.cost_millicents) + rate(r, r.currency) + mark) };
      }),
    });
  }
  return charts;
}

/** This month's spend and projection, one sentence per service. */
export function monthLines(v: InsightView): string[] {
  return v.month.map((m) =>
    m.service === "orbnet"
      ? S.spend.monthCredits(fmt.credits(m.spent_credits), fmt.credits(Math.round(m.projected_credits)))
      : S.spend.monthMoney(fmt.money(m.spent_millicents, m.currency), fmt.money(m.projected_millicents, m.currency)),
  );
}

/** True if `r` is one of the cheapest regions measured. */
export function isCheapest(v: InsightView | null, r: RegionRef): boolean {
  return v?.cheapest_regions.some((c) => c.service === r.service && c.id === r.id) ?? false;
}

/** The budget's fields as the form shows them: credits as numbers, money in currency units. */
export interface BudgetForm {
  session_credits: string;
  day_credits: string;
  month_credits: string;
  session_money: string;
  day_money: string;
  month_money: string;
}

const show = (v: number | null, scale = 1): string => (v === null ? "" : String(v / scale));

/** The form's values for a budget. */
export function budgetForm(b: Budget): BudgetForm {
  return {
    session_credits: show(b.session_credits),
    day_credits: show(b.day_credits),
    month_credits: show(b.month_credits),
    session_money: show(b.session_millicents, MILLICENTS_PER_UNIT),
    day_money: show(b.day_millicents, MILLICENTS_PER_UNIT),
    month_money: show(b.month_millicents, MILLICENTS_PER_UNIT),
  };
}

/** A budget from the form, or the first field that is not a positive number. */
export function parseBudget(f: BudgetForm): Budget | { invalid: keyof BudgetForm } {
  const num = (k: keyof BudgetForm): number | null | "bad" => {
    const t = f[k].trim().replace(",", ".");
    if (t === "") return null;
    const n = Number(t);
    return Number.isFinite(n) && n > 0 ? n : "bad";
  };
  const keys: (keyof BudgetForm)[] = ["session_credits", "day_credits", "month_credits", "session_money", "day_money", "month_money"];
  const vals = new Map<keyof BudgetForm, number | null>();
  for (const k of keys) {
    const v = num(k);
    if (v === "bad") return { invalid: k };
    vals.set(k, v);
  }
  const mc = (k: keyof BudgetForm) => {
    const v = vals.get(k) ?? null;
    return v === null ? null : Math.round(v * MILLICENTS_PER_UNIT);
  };
  return {
    session_credits: vals.get("session_credits") ?? null,
    day_credits: vals.get("day_credits") ?? null,
    month_credits: vals.get("month_credits") ?? null,
    session_millicents: mc("session_money"),
    day_millicents: mc("day_money"),
    month_millicents: mc("month_money"),
  };
}

import { describe, expect, it } from "vitest";
import { layout, niceTicks } from "./chart";

describe("niceTicks", () => {
  it("steps by 1, 2, 2.5 or 5 × 10ⁿ from 0 to at least the maximum", () => {
    expect(niceTicks(10)).toEqual([0, 2.5, 5, 7.5, 10]);
    expect(niceTicks(87)).toEqual([0, 25, 50, 75, 100]);
    expect(niceTicks(0.042)).toEqual([0, 0.02, 0.04, 0.06]);
    expect(niceTicks(0)).toEqual([0, 1]);
    expect(niceTicks(Number.NaN)).toEqual([0, 1]);
  });
});

describe("layout", () => {
  const spec = {
    id: "c",
    title: "Credits per day",
    unit: "credits",
    format: (v: number) => String(v),
    bars: [
      { label: "2026-12-01", value: 10, tooltip: "10 credits" },
      { label: "2026-12-02", value: 5, tooltip: "5 credits", highlight: true },
      { label: "2026-12-03", value: 0, tooltip: "none" },
    ],
  };
  it("scales bars to the top tick and keeps them inside the plot", () => {
    const l = layout(spec, 520, 200);
    expect(l.ticks.map((t) => t.label)).toEqual(["0", "2.5", "5", "7.5", "10"]);
    expect(l.ticks[0].y).toBe(l.plot.bottom);
    expect(l.ticks[4].y).toBe(l.plot.top);
    const [a, b, c] = l.bars;
    expect(a.y).toBe(l.plot.top);
    expect(b.h).toBeCloseTo(a.h / 2);
    expect(c.h).toBe(0);
    expect(b.highlight).toBe(true);
    for (const bar of l.bars) {
      expect(bar.x).toBeGreaterThanOrEqual(l.plot.left);
      expect(bar.x + bar.w).toBeLessThanOrEqual(l.plot.right);
    }
    expect(a.x).toBeLessThan(b.x);
  });
});

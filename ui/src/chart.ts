// Bar charts as SVG: a y axis with round ticks and its unit, labelled bars, and a tooltip per bar
// (the SVG <title>, which desktop WebKit shows on hover and screen readers read). The layout is a
// pure function so it is unit-tested; rendering only turns it into elements.

import { svg } from "./dom";
import { S } from "./strings";

/** One bar. */
export interface Bar {
  /** Category label under the bar (a day, a region). */
  label: string;
  /** Height in the chart's unit. */
  value: number;
  /** Hover text: the exact figures behind the bar. */
  tooltip: string;
  /** Drawn in the highlight colour (e.g. the cheapest region). */
  highlight?: boolean;
}

/** A chart to draw. */
export interface BarChartSpec {
  /** Element id. */
  id: string;
  /** Title, also the accessible name. */
  title: string;
  /** Unit of the y axis ("credits", "EUR"). */
  unit: string;
  /** The bars, in display order. */
  bars: Bar[];
  /** Formats an axis value ("12", "€0.50"). */
  format: (v: number) => string;
}

/** A laid-out bar. */
export interface BarBox {
  x: number;
  y: number;
  w: number;
  h: number;
  label: string;
  tooltip: string;
  highlight: boolean;
}

/** Where everything goes. */
export interface Layout {
  width: number;
  height: number;
  /** The plot area. */
  plot: { left: number; top: number; right: number; bottom: number };
  /** Y ticks, bottom up, with their labels. */
  ticks: { y: number; value: number; label: string }[];
  bars: BarBox[];
}

/** 0 and 3–5 round steps (1, 2, 2.5 or 5 × 10ⁿ) reaching at least `max`. */
export function niceTicks(max: number): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const rough = max / 4;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= rough) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

/** Lays out `spec` in a `width` × `height` box. */
export function layout(spec: BarChartSpec, width = 520, height = 200): Layout {
  const plot = { left: 64, top: 24, right: width - 8, bottom: height - 36 };
  const ticks = niceTicks(Math.max(0, ...spec.bars.map((b) => b.value)));
  const top = ticks[ticks.length - 1] || 1;
  const y = (v: number) => plot.bottom - (v / top) * (plot.bottom - plot.top);
  const n = Math.max(1, spec.bars.length);
  const slot = (plot.right - plot.left) / n;
  const w = Math.max(2, Math.min(48, slot * 0.7));
  return {
    width,
    height,
    plot,
    ticks: ticks.map((value) => ({ y: y(value), value, label: spec.format(value) })),
    bars: spec.bars.map((b, i) => {
      const v = Math.max(0, b.value);
      return {
        x: plot.left + slot * i + (slot - w) / 2,
        y: y(v),
        w,
        h: plot.bottom - y(v),
        label: b.label,
        tooltip: b.tooltip,
        highlight: b.highlight === true,
      };
    }),
  };
}

function text(x: number, y: number, s: string, attrs: Record<string, string | number> = {}): SVGElement {
  const t = svg("text", { x: x.toFixed(1), y: y.toFixed(1), ...attrs });
  t.textContent = s;
  return t;
}

/** Short enough to sit under a bar. */
function short(label: string, slot: number): string {
  const max = Math.max(3, Math.floor(slot / 7));
  return label.length > max ? S.units.truncated(label.slice(0, max - 1)) : label;
}

/** The chart as a <figure> with an SVG inside. */
export function barChart(spec: BarChartSpec): SVGElement {
  const l = layout(spec);
  const slot = (l.plot.right - l.plot.left) / Math.max(1, spec.bars.length);
  const title = svg("title", {});
  title.textContent = spec.title;
  const root = svg(
    "svg",
    { id: spec.id, class: "bar-chart", viewBox: `0 0 ${l.width} ${l.height}`, width: l.width, height: l.height, role: "img", "aria-label": spec.title },
    title,
  );
  for (const t of l.ticks) {
    root.appendChild(svg("line", { class: "grid", x1: l.plot.left, x2: l.plot.right, y1: t.y.toFixed(1), y2: t.y.toFixed(1) }));
    root.appendChild(text(l.plot.left - 6, t.y + 4, t.label, { class: "tick", "text-anchor": "end" }));
  }
  root.appendChild(svg("line", { class: "axis", x1: l.plot.left, x2: l.plot.left, y1: l.plot.top, y2: l.plot.bottom }));
  root.appendChild(svg("line", { class: "axis", x1: l.plot.left, x2: l.plot.right, y1: l.plot.bottom, y2: l.plot.bottom }));
  root.appendChild(text(4, 12, spec.unit, { class: "unit" }));
  for (const b of l.bars) {
    const tip = svg("title", {});
    tip.textContent = b.tooltip;
    const g = svg("g", { class: b.highlight ? "bar highlight" : "bar", "data-label": b.label, tabindex: 0 },
      svg("rect", { x: b.x.toFixed(1), y: b.y.toFixed(1), width: b.w.toFixed(1), height: Math.max(0, b.h).toFixed(1) }), tip);
    g.appendChild(text(b.x + b.w / 2, l.plot.bottom + 16, short(b.label, slot), { class: "x-label", "text-anchor": "middle" }));
    root.appendChild(g);
  }
  return root;
}

// Formatting helpers: the same rules as src-tauri/src/format.rs (money, credits, bytes, durations),
// plus the UI-only ones (rates, reset times, clock times). Unit words come from the catalogue.
import { S } from "./strings";

/** Money from millicents of a euro: 3 decimals below one euro, else 2 ("€0.042", "€12.35"). */
export function euros(millicents: number): string {
  const mc = Math.max(0, Math.round(millicents));
  if (mc < 100_000) {
    const milli = Math.floor((mc + 50) / 100);
    return `€${Math.floor(milli / 1000)}.${String(milli % 1000).padStart(3, "0")}`;
  }
  const cents = Math.floor((mc + 500) / 1000);
  return `€${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
}

/**
 * Money from millicents in the service's currency: `eur` → "€0.042", `usd` → "$1.20",
 * `gbp` → "£1.20", other codes written out ("1.20 CHF"), unknown → the bare amount. Never
 * assumes the euro. Same rounding as {@link euros}.
 */
export function money(millicents: number, currency: string | null): string {
  const bare = euros(millicents).slice(1);
  const code = (currency ?? "").toLowerCase();
  if (code === "eur") return `€${bare}`;
  if (code === "usd") return `$${bare}`;
  if (code === "gbp") return `£${bare}`;
  return code === "" ? bare : `${bare} ${code.toUpperCase()}`;
}

/** Credits with at most two decimals ("87.46", "12"). */
export function credits(value: number): string {
  const r = Math.round(value * 100) / 100;
  return Number.isInteger(r) ? r.toFixed(0) : r.toFixed(2);
}

/** Bytes in binary units with one decimal above 1 KiB ("512 B", "1.5 MiB"). */
export function bytes(n: number): string {
  const units = S.units.bytes;
  if (n < 1024) return S.units.amount(String(Math.max(0, Math.round(n))), units[0]);
  let v = n / 1024;
  let u = 1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return S.units.amount(v.toFixed(1), units[u]!);
}

/** A transfer rate ("1.5 MiB/s"). */
export function rate(bytesPerSecond: number): string {
  return S.units.perSecond(bytes(bytesPerSecond));
}

/** A duration as its two largest units ("3 h 12 min", "12 min", "45 s", "2 d 5 h"). */
export function duration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const u = S.units;
  const of = (n: number, unit: string) => u.amount(String(n), unit);
  if (d === 0 && h === 0 && m === 0) return of(sec, u.seconds);
  if (d === 0 && h === 0) return of(m, u.minutes);
  if (d === 0) return m === 0 ? of(h, u.hours) : u.pair(of(h, u.hours), of(m, u.minutes));
  return h === 0 ? of(d, u.days) : u.pair(of(d, u.days), of(h, u.hours));
}

/** A running clock for the live panel ("0:05:09", "27:00:00"). */
export function clock(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

/** "resets in 3 h 12 min" (or "resets now" once the time has passed). */
export function resetsIn(resetsAtMs: number, nowMs: number): string {
  const left = Math.floor((resetsAtMs - nowMs) / 1000);
  if (left <= 0) return S.units.resetsNow;
  // Round up to the minute above a minute, so "in 0 min" never shows.
  return S.units.resetsIn(duration(left >= 60 ? Math.ceil(left / 60) * 60 : left));
}

/**
 * An exact date and time in the user's locale and time zone ("29/11/2026, 14:05" in en-GB),
 * for tooltips and the history. `locale` and `timeZone` are for tests.
 */
export function dateTime(ms: number, locale?: string, timeZone?: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: "short", timeStyle: "short", timeZone }).format(new Date(ms));
}

/** Minutes left at the current burn rate, or null when not burning. */
export function minutesLeft(left: number, burnPerMinute: number): number | null {
  if (burnPerMinute <= 0) return null;
  return Math.max(0, left / burnPerMinute);
}

/** A percentage for a bar (0–100, clamped), or null when unlimited. */
export function percent(used: number, limit: number | null): number | null {
  if (limit === null || limit <= 0) return null;
  return Math.min(100, Math.max(0, (used / limit) * 100));
}

/** A field of a CSV line, quoted when needed. */
export function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

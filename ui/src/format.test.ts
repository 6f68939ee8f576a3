import { describe, expect, it } from "vitest";
import { bytes, clock, credits, csvField, dateTime, duration, euros, minutesLeft, money, percent, rate, resetsIn } from "./format";

describe("money from millicents", () => {
  it.each([
    [0, "€0.000"],
    [4_200, "€0.042"],
    [4_249, "€0.042"],
    [4_250, "€0.043"],
    [99_999, "€1.000"],
    [100_000, "€1.00"],
    [1_234_567, "€12.35"],
  ])("%i → %s (same as Rust)", (mc, want) => expect(euros(mc)).toBe(want));
});

describe("credits, bytes, rates", () => {
  it("credits keep one decimal at most", () => {
    expect(credits(87.456)).toBe("87.46");
    expect(credits(4999.975)).toBe("4999.98");
    expect(credits(12)).toBe("12");
    expect(credits(0.004)).toBe("0");
  });
  it("bytes use binary units", () => {
    expect(bytes(0)).toBe("0 B");
    expect(bytes(512)).toBe("512 B");
    expect(bytes(1536)).toBe("1.5 KiB");
    expect(bytes(5 * 1024 ** 3)).toBe("5.0 GiB");
    expect(rate(2 * 1024 * 1024)).toBe("2.0 MiB/s");
  });
});

describe("durations", () => {
  it.each([
    [45, "45 s"],
    [12 * 60 + 5, "12 min"],
    [3 * 3600 + 12 * 60 + 59, "3 h 12 min"],
    [7200, "2 h"],
    [2 * 86_400 + 5 * 3600, "2 d 5 h"],
    [-3, "0 s"],
  ])("%i s → %s", (s, want) => expect(duration(s)).toBe(want));
  it("clock", () => {
    expect(clock(309)).toBe("0:05:09");
    expect(clock(27 * 3600)).toBe("27:00:00");
  });
});

describe("reset times", () => {
  const now = 1_000_000_000;
  it("says resets in 3 h 12 min", () => {
    expect(resetsIn(now + (3 * 3600 + 11 * 60 + 30) * 1000, now)).toBe("resets in 3 h 12 min");
  });
  it("seconds under a minute, now when passed", () => {
    expect(resetsIn(now + 30_000, now)).toBe("resets in 30 s");
    expect(resetsIn(now - 1, now)).toBe("resets now");
  });
});

describe("meters", () => {
  it("minutes left at the burn rate", () => {
    expect(minutesLeft(10, 0.5)).toBe(20);
    expect(minutesLeft(10, 0)).toBeNull();
  });
  it("percent is clamped and null when unlimited", () => {
    expect(percent(50, 200)).toBe(25);
    expect(percent(300, 200)).toBe(100);
    expect(percent(1, null)).toBeNull();
  });
  it("csv quoting", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField('a,"b"')).toBe('"a,""b"""');
  });
});

describe("money in the service's currency", () => {
  it.each([
    [4_200, "eur", "€0.042"],
    [120_000, "usd", "$1.20"],
    [120_000, "GBP", "£1.20"],
    [120_000, "chf", "1.20 CHF"],
    [120_000, null, "1.20"],
  ])("%i %s → %s", (mc, cur, want) => expect(money(mc, cur)).toBe(want));
});

describe("dates and times in the user's locale", () => {
  const at = Date.UTC(2026, 10, 29, 14, 5);
  it("follows the locale's order and clock", () => {
    expect(dateTime(at, "en-GB", "UTC")).toBe("29/11/2026, 14:05");
    expect(dateTime(at, "de-DE", "UTC")).toBe("29.11.26, 14:05");
    expect(dateTime(at, "en-US", "UTC")).toMatch(/^11\/29\/26, 2:05\sPM$/);
  });
  it("and the time zone", () => {
    expect(dateTime(at, "en-GB", "Asia/Tokyo")).toBe("29/11/2026, 23:05");
  });
});

import ts from "typescript";
import { describe, expect, it } from "vitest";
import { en, plural, type Strings } from "./strings";

/** The sources of ui/src as text (Vite reads them; a new file is checked as soon as it exists). */
const FILES: Record<string, string> = Object.fromEntries(
  Object.entries(import.meta.glob<string>("./*.ts", { query: "?raw", import: "default", eager: true })).map(([k, v]) => [k.slice(2), v]),
);
/** Files that may hold words: the catalogue itself, the generated contract, and the tests. */
const EXEMPT = (f: string) => f === "strings.ts" || f === "contract.gen.ts" || f.endsWith(".test.ts") || f.endsWith(".d.ts");
const SOURCES = Object.keys(FILES).filter((f) => !EXEMPT(f)).sort();

/**
 * Literals in the sources that are not UI text though they look like it: CSS class lists
 * (a space separates classes). Anything else with words belongs in strings.ts.
 */
const ALLOWED = new Set(["card account", "card welcome", "pill demo", "bar highlight"]);

/** Words followed by another word ("Hello there"), or a capitalised word ("Connect", "Loading…"). */
const LOOKS_LIKE_TEXT = [/\p{L}{2,} +\p{L}/u, /^\P{L}*\p{Lu}\p{Ll}+/u];

/** Every string literal and every literal part of a template string in `code`, with its line. */
function literals(file: string, code: string): { text: string; line: number }[] {
  const src = ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true);
  const out: { text: string; line: number }[] = [];
  const visit = (node: ts.Node): void => {
    // Module specifiers ("./strings", "@tauri-apps/api/core") are not text.
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return;
    if (
      ts.isStringLiteral(node) ||
      ts.isNoSubstitutionTemplateLiteral(node) ||
      ts.isTemplateHead(node) ||
      ts.isTemplateMiddle(node) ||
      ts.isTemplateTail(node)
    ) {
      out.push({ text: node.text, line: src.getLineAndCharacterOfPosition(node.getStart(src)).line + 1 });
    }
    // Template heads, middles and tails are children of the template expression and its spans.
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}

/** The literals of `code` that look like UI text and are not allowed. */
function strays(file: string, code: string): string[] {
  return literals(file, code)
    .filter(({ text }) => !ALLOWED.has(text) && LOOKS_LIKE_TEXT.some((re) => re.test(text)))
    .map(({ text, line }) => `${file}:${line}: ${JSON.stringify(text)}`);
}

describe("UI strings live in strings.ts", () => {
  it("checks the window's sources", () => {
    expect(SOURCES).toEqual(expect.arrayContaining(["main.ts", "view.ts", "spend.ts", "chart.ts", "format.ts"]));
  });

  it.each(SOURCES)("%s has no user-visible literal outside the catalogue", (file: string) => {
    expect(strays(file, FILES[file] ?? "")).toEqual([]);
  });

  it("the check catches new text in literals and templates, and lets ids, classes and commands through", () => {
    const caught = strays("x.ts", [
      `h("p", {}, "Hello there");`,
      `h("button", {}, 'Save');`,
      "flash(`Saved ${path} just now`);",
      "const t = `${n} items left`;",
      `el.title = "Loading…";`,
    ].join("\n"));
    expect(caught).toEqual([
      'x.ts:1: "Hello there"',
      'x.ts:2: "Save"',
      'x.ts:3: "Saved "',
      'x.ts:3: " just now"',
      'x.ts:4: " items left"',
      'x.ts:5: "Loading…"',
    ]);
    expect(strays("x.ts", [
      `import { S } from "./strings";`,
      `h("section", { id: "ws-sessions", class: "card account", "aria-busy": "true" }, S.app.loading);`,
      `call("disconnect_workspace_session"); on("ferry:close-asked", f); svg("text", { "text-anchor": "end" });`,
      "const key = `${r.service}/${r.id}`; const box = `0 0 ${w} ${h}`;",
      `const re = /[",\\n\\r]/; localStorage.getItem("ferry.welcome.dismissed");`,
    ].join("\n"))).toEqual([]);
  });
});

describe("the catalogue", () => {
  /** Every leaf of a catalogue, by path; functions are called with sample arguments. */
  function leaves(value: unknown, path: string, out: [string, string][]): [string, string][] {
    if (typeof value === "string") out.push([path, value]);
    else if (typeof value === "function") {
      const fn = value as (...args: unknown[]) => unknown;
      const args = Array.from({ length: fn.length }, (_, i) => (i === 0 ? "X" : 2));
      leaves(fn(...args), `${path}()`, out);
    } else if (Array.isArray(value)) value.forEach((v, i) => leaves(v, `${path}[${i}]`, out));
    else if (typeof value === "object" && value !== null) for (const [k, v] of Object.entries(value)) leaves(v, `${path}.${k}`, out);
    return out;
  }

  it("has no empty value", () => {
    const all = leaves(en, "en", []);
    expect(all.length).toBeGreaterThan(150);
    expect(all.filter(([, v]) => v.trim() === "")).toEqual([]);
  });

  it("is a complete Strings (a second locale has to give every key)", () => {
    const locale: Strings = { ...en };
    expect(Object.keys(locale).sort()).toEqual(Object.keys(en).sort());
  });

  it("picks plural forms by the locale's rules", () => {
    expect(plural("en", 1, { one: "node", other: "nodes" })).toBe("node");
    expect(plural("en", 0, { one: "node", other: "nodes" })).toBe("nodes");
    expect(plural("en", 3, { other: "x" })).toBe("x");
    expect(en.region.nodes("eu-1", 1)).toBe("eu-1 · 1 node");
    expect(en.spend.sessions(2)).toBe("2 sessions");
  });

  it("keeps the texts the GUI tests match on", () => {
    expect(en.connect.favourite).toBe("★ Favourite");
    expect(en.close.body("Paris")).toBe(
      "You are connected to Paris and the session is metered. No tray icon is shown on this desktop, so a hidden Ferry would keep billing unseen.",
    );
    expect(en.close.body(null)).toContain("You are connected and the session");
    expect(en.connect.regionChoice("Paris, FR", true, true, null)).toBe("★ Paris, FR · cheapest so far");
    expect(en.connect.regionChoice("Paris, FR", false, false, 14)).toBe("Paris, FR · 14 ms");
  });
});

// The only way the UI talks to Rust: typed wrappers over Tauri's invoke and listen, checked
// against the generated contract (contract.gen.ts), so a renamed command or field fails tsc.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { CommandError, Commands, Events } from "./contract.gen";
import { S } from "./strings";

/** Calls a Rust command with its typed arguments. Rejects with a CommandError. */
export async function call<K extends keyof Commands>(
  name: K,
  ...args: Commands[K]["args"] extends Record<string, never> ? [] : [Commands[K]["args"]]
): Promise<Commands[K]["result"]> {
  try {
    return await invoke<Commands[K]["result"]>(name, args[0] ?? {});
  } catch (err) {
    throw toCommandError(err);
  }
}

/** Subscribes to a Rust event with its typed payload. */
export function on<K extends keyof Events>(name: K, handler: (payload: Events[K]) => void): Promise<UnlistenFn> {
  return listen<Events[K]>(name, (e) => handler(e.payload));
}

/** Normalises whatever invoke rejected with into a CommandError. */
export function toCommandError(err: unknown): CommandError {
  if (typeof err === "object" && err !== null && "code" in err && "message" in err) {
    const e = err as { code: unknown; message: unknown };
    return { code: String(e.code), message: String(e.message) };
  }
  return { code: "internal", message: typeof err === "string" ? err : S.app.somethingWentWrong };
}

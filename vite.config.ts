/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The UI lives in ui/ and is built into dist/, which tauri.conf.json embeds ("../dist" from src-tauri).
export default defineConfig({
  root: "ui",
  base: "./",
  clearScreen: false,
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    target: "safari15",
    sourcemap: false,
  },
  test: {
    root: ".",
    include: ["ui/src/**/*.test.ts"],
    environment: "node",
  },
});

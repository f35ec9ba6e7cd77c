/**
 * Where the reference material lives: ../shared beside the repository (or $LORA_TS_SHARED). Tests that
 * need it pass `needsShared(...)` as their skip option, which skips WITH a message when it is absent.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (tests run from dist/test/...). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const SHARED = process.env["LORA_TS_SHARED"] ?? resolve(REPO_ROOT, "../shared");

export function sharedPath(...parts: string[]): string {
  return join(SHARED, ...parts);
}

/** `false` when every file exists, else the skip message. */
export function needsShared(...files: string[]): string | false {
  const missing = files.find((f) => !existsSync(sharedPath(f)));
  return missing === undefined ? false : `needs ../shared (absent: ${missing})`;
}

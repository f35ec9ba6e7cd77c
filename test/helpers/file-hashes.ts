/** A folder's files (recursively, by relative path) with their SHA-256, to prove a folder untouched. */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export function fileHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true, encoding: "utf8" }).sort()) {
    const p = join(dir, f);
    if (statSync(p).isFile()) out[f] = createHash("sha256").update(readFileSync(p)).digest("hex");
  }
  return out;
}

/** Where lora-ts keeps what it can rebuild: converted GGUF models, GGUF adapters, prepared data sets. */
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The cache root: $LORA_TS_CACHE when set, else $XDG_CACHE_HOME/lora-ts, else ~/.cache/lora-ts. Read
 * from the environment on every call, so tests can point it at a temporary folder.
 */
export function cacheRoot(): string {
  const env = process.env["LORA_TS_CACHE"];
  if (env) return env;
  const xdg = process.env["XDG_CACHE_HOME"];
  return join(xdg || join(homedir(), ".cache"), "lora-ts");
}

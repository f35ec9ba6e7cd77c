/**
 * What `--model` may name: a Hugging Face model directory (used as is), a llama.cpp `.gguf` file,
 * which is converted once (see convert-gguf.ts) into a cache folder and that folder used from then on,
 * or a hub id `org/name[@revision]` (io/hub.ts), which becomes its snapshot folder in the Hugging Face
 * cache. A local path that exists always wins over a hub id of the same spelling.
 *
 * Cache: `$LORA_TS_CACHE/gguf/<key>` when LORA_TS_CACHE is set, else `$XDG_CACHE_HOME/lora-ts/gguf/<key>`
 * or `~/.cache/lora-ts/gguf/<key>`, where key = sha256 of the file's real path, size and mtime — a
 * changed file gets a new folder. The folder is assembled under a temporary name and renamed into
 * place, so an interrupted conversion never leaves a half-written folder that would later be reused.
 */
import { createHash } from "node:crypto";
import { existsSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import { isGgufFile } from "../io/gguf.js";
import { hubIdFor, hubSnapshot } from "../io/hub.js";
import { cacheRoot } from "../util/cache-root.js";
import { convertGguf } from "./convert-gguf.js";

export { cacheRoot };

/** The cache folder a GGUF file converts into (whether or not it exists yet). */
export function ggufCacheDir(file: string): string {
  const real = realpathSync(file);
  const st = statSync(real);
  const key = createHash("sha256").update(`${real}\0${st.size}\0${st.mtimeMs}`).digest("hex");
  return join(cacheRoot(), "gguf", key);
}

function complete(dir: string): boolean {
  return existsSync(join(dir, "config.json")) && existsSync(join(dir, "model.safetensors"));
}

/**
 * A model directory for `p`: a directory (or anything that is not a `.gguf` file) is returned
 * unchanged; a GGUF file (`.gguf`, or any file starting with the GGUF magic) is converted into its cache folder once, and that folder returned.
 */
export async function resolveModelPath(p: string): Promise<string> {
  let isFile = false;
  try {
    isFile = statSync(p).isFile();
  } catch {
    if (hubIdFor(p)) return hubSnapshot(p, { kind: "model" });
    return p; // missing: let the model loader report it
  }
  if (!isFile || !(p.toLowerCase().endsWith(".gguf") || isGgufFile(p))) return p;
  const dir = ggufCacheDir(p);
  if (complete(dir)) return dir;
  try {
    // `force` replaces a leftover incomplete folder; the new one is swapped in only when whole.
    await convertGguf({ model: p, out: dir, force: true });
  } catch (e) {
    if (complete(dir)) return dir; // another process finished the same conversion first
    throw e;
  }
  return dir;
}

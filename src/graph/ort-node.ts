/**
 * onnxruntime for Node: onnxruntime-node's native CPU build. The browser bundle swaps this file for
 * ort-web.ts (scripts/build-web.mjs, and package.json's "browser" field for other bundlers); the two
 * export the same names, so runtime.ts is the same code on both platforms.
 */
import { availableParallelism } from "node:os";
import { dirname } from "node:path";
import ort from "onnxruntime-node";
import type { SessionOptions } from "./session-options.js";

export { ort };
/** Which binding this is (the browser bundle swaps this file for ort-web.ts). */
export const PLATFORM: "node" | "web" = "node";

/** Node session options: every core, the CPU provider, external data resolved in a folder. */
export function platformSessionOptions(
  model: Uint8Array | string,
  opts: SessionOptions,
): ort.InferenceSession.SessionOptions {
  const config: Record<string, string> = { ...opts.config };
  const externalDir = opts.externalDataDir ?? (typeof model === "string" ? dirname(model) : undefined);
  if (externalDir) config["session.model_external_initializers_file_folder_path"] = externalDir;
  return {
    executionProviders: ["cpu"],
    intraOpNumThreads: opts.threads ?? availableParallelism(),
    interOpNumThreads: 1,
    extra: nest(config),
  };
}

/** ORT's node binding reads `extra` as nested objects joined by dots. */
function nest(flat: Record<string, string>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split(".");
    let o = root;
    for (const p of parts.slice(0, -1)) {
      o[p] ??= {};
      o = o[p] as Record<string, unknown>;
    }
    o[parts.at(-1)!] = value;
  }
  return root;
}

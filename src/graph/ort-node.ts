/**
 * onnxruntime for Node: onnxruntime-node's native CPU build. The browser bundle swaps this file for
 * ort-web.ts (scripts/build-web.mjs, and package.json's "browser" field for other bundlers); the two
 * export the same names, so runtime.ts is the same code on both platforms.
 */
import { readFileSync } from "node:fs";
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

/** What hostInt8WeightMax found (the CPU does not change while the process runs). */
let hostWeightMax: number | undefined;

/**
 * The largest |q| for int8 weights fed to DynamicQuantizeMatMul (int8.ts): 127 where onnxruntime's
 * uint8 × int8 kernel cannot saturate (x86 with AVX-VNNI, AVX512-VNNI or AMX; Arm's dot-product
 * kernels), 63 on x86 without them, whose VPMADDUBSW kernel saturates int16 pair sums. An x86 host
 * whose CPU flags cannot be read counts as one without VNNI: a narrower range costs a little
 * precision, saturation costs far more. LORA_TS_INT8_WEIGHT_MAX (127 or 63) overrides it, for tests.
 */
export function int8WeightMax(): number {
  const forced = process.env["LORA_TS_INT8_WEIGHT_MAX"];
  if (forced === "127" || forced === "63") return Number(forced);
  hostWeightMax ??= hostInt8WeightMax();
  return hostWeightMax;
}

function hostInt8WeightMax(): number {
  if (process.arch !== "x64" && process.arch !== "ia32") return 127;
  let flags = "";
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
  } catch {
    // Not Linux: assume no VNNI.
  }
  return /\b(avx512_vnni|avx_vnni|amx_int8)\b/.test(flags) ? 127 : 63;
}

/**
 * The machine line every benchmark prints: the host is shared and the CPU changes between machines
 * (Zen 4 / Zen 5 EPYC, Intel with AMX), so each figure goes with the CPU it was measured on. The
 * model name alone is often just "AMD EPYC": the vendor, family, model and stepping from
 * /proc/cpuinfo say which generation, and the SIMD/matrix flags say which kernels onnxruntime (MLAS)
 * and the PyTorch peer (oneDNN) can use.
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";

/** The SIMD and matrix extensions that change which kernels run. */
const KERNEL_FLAGS = [
  "fma",
  "avx2",
  "avx_vnni",
  "avx512f",
  "avx512_vnni",
  "avx512_bf16",
  "amx_tile",
  "amx_bf16",
  "amx_int8",
];

export function machineLine(): string {
  let info = "";
  try {
    const text = readFileSync("/proc/cpuinfo", "utf8");
    const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, "m").exec(text)?.[1]?.trim() ?? "?";
    const flags = new Set(field("flags").split(" "));
    const simd = KERNEL_FLAGS.filter((f) => flags.has(f));
    info =
      `, ${field("vendor_id")} cpu family ${field("cpu family")} model ${field("model")} stepping ` +
      `${field("stepping")}, ${simd.join(" ") || "no AVX"}`;
  } catch {
    // Not Linux: the model name is all there is.
  }
  return `${cpus().length} cores (${cpus()[0]?.model ?? "?"}${info}), Node ${process.version}`;
}

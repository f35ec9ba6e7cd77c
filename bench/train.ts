/**
 * Training benchmark against the PyTorch peer, in the same run (the host drifts; only same-run ratios
 * count). For each LoRA configuration and shape it alternates: PyTorch fp32, lora-ts, PyTorch bf16
 * autocast, each in its own process, and prints s/step, tokens/s, peak RSS and the ratios. lora-ts runs
 * twice: exact (float32 throughout) and with --base-int8 (frozen linear weights in int8).
 *
 *   npm run bench:train [-- --configs gpt2-c_attn,llama-qv,llama-all,qwen05b-all,llama1b-all
 *     --shapes 4x256,8x512 --big-shapes 4x512 --steps 5 --warmup 2 --big-steps 2 --big-warmup 1]
 *
 * Models are random-weight checkpoints written by the project's own writer: GPT-2-small (124M) and
 * SmolLM-135M shapes, and (configs qwen05b-all and llama1b-all, at 4x512 by default, bf16 checkpoints)
 * Qwen2.5-0.5B and Llama-3.2-1B shapes. Each row is one lora-ts variant (exact float32, --base-int8,
 * and for the big shapes --base-int8 with --gradient-checkpointing; with --dora also DoRA in float32)
 * against the peer's fp32 and bf16 runs of the same configuration (plain LoRA for the peer). A run that cannot fit is not started: lora-ts's own memory estimate
 * (the one `train` refuses with) is compared with the memory available, and the peer stops itself when
 * memory runs low or its warm-up projects past --peer-budget seconds; the table says why. The peer (../shared/peers/torch_lora_bench.py) needs /usr/bin/python3 with
 * torch: `apt-get install python3-torch libopenblas0-pthread`. Without OpenBLAS, Debian's torch 1.13
 * (BLAS_INFO=generic) falls back to the reference BLAS at ~6 GFLOP/s and the peer is ~25× slower than
 * it should be. Without the peer only lora-ts's figures are printed.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { makeLoraConfig } from "../src/lora/config.js";
import { selectTargets } from "../src/lora/targets.js";
import { parseModelConfig } from "../src/models/family.js";
import { listModules } from "../src/models/modules.js";
import { estimateTrainMemory } from "../src/train/memory-estimate.js";
import { availableMemoryBytes } from "../src/util/memory.js";
import { machineLine } from "./machine.js";
import { GPT2_SMALL, LLAMA32_1B, QWEN25_05B, SMOLLM_135M } from "./shapes.js";

const { values: a } = parseArgs({
  options: {
    configs: { type: "string", default: "gpt2-c_attn,llama-qv,llama-all,qwen05b-all,llama1b-all" },
    shapes: { type: "string", default: "4x256,8x512" },
    "big-shapes": { type: "string", default: "4x512" },
    steps: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    "big-steps": { type: "string", default: "2" },
    "big-warmup": { type: "string", default: "1" },
    peer: { type: "string", default: "auto" },
    "peer-budget": { type: "string", default: "1200" },
    config: { type: "string", multiple: true },
    int8: { type: "string", default: "on" },
    /** Also a DoRA row (float32 throughout) beside the exact LoRA one. */
    dora: { type: "boolean", default: false },
  },
});

type ModelKind = "gpt2" | "llama" | "qwen05b" | "llama1b";
const MODELS: Record<
  ModelKind,
  { json: Record<string, unknown>; shape: string; bf16: boolean; big: boolean }
> = {
  gpt2: { json: GPT2_SMALL, shape: "GPT2_SMALL", bf16: false, big: false },
  llama: { json: SMOLLM_135M, shape: "SMOLLM_135M", bf16: false, big: false },
  qwen05b: { json: QWEN25_05B, shape: "QWEN25_05B", bf16: true, big: true },
  llama1b: { json: LLAMA32_1B, shape: "LLAMA32_1B", bf16: true, big: true },
};
const ALL_LINEAR = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";
const CONFIGS: Record<string, { model: ModelKind; targets: string }> = {
  "gpt2-c_attn": { model: "gpt2", targets: "c_attn" },
  "llama-qv": { model: "llama", targets: "q_proj,v_proj" },
  "llama-all": { model: "llama", targets: ALL_LINEAR },
  "qwen05b-all": { model: "qwen05b", targets: ALL_LINEAR },
  "llama1b-all": { model: "llama1b", targets: ALL_LINEAR },
};

/** One lora-ts configuration: float32 throughout, int8 frozen weights, int8 with recomputed layers. */
interface Variant {
  name: string;
  int8: boolean;
  checkpoint: boolean;
  dora?: boolean;
}
const EXACT: Variant = { name: "exact", int8: false, checkpoint: false };
const INT8: Variant = { name: "int8", int8: true, checkpoint: false };
const INT8_CKPT: Variant = { name: "int8+ckpt", int8: true, checkpoint: true };
/** DoRA in float32 (--base-int8 cannot train DoRA): its cost against the exact LoRA row. */
const DORA: Variant = { name: "dora", int8: false, checkpoint: false, dora: true };

const shared = process.env["LORA_TS_SHARED"] ?? resolve(process.cwd(), "../shared");
const peerScript = join(shared, "peers/torch_lora_bench.py");
const hasTorch = () => spawnSync("/usr/bin/python3", ["-c", "import torch"]).status === 0;
const usePeer = a.peer !== "off" && existsSync(peerScript) && hasTorch();

interface Measure {
  sPerStep: number;
  tokPerS: number;
  rssMiB: number;
  buildS?: number;
}
/** A measurement, or why there is none. */
type Outcome = Measure | { why: string };
const measured = (o: Outcome | null): Measure | null => (o && "tokPerS" in o ? o : null);

const GiB = 2 ** 30;

function runOurs(
  dir: string,
  targets: string,
  batch: number,
  seq: number,
  v: Variant,
  steps: [string, string],
): Outcome {
  const args = [
    "dist/bench/train-worker.js",
    "--model",
    dir,
    "--targets",
    targets,
    "--batch",
    String(batch),
    "--seq",
    String(seq),
    "--steps",
    steps[0],
    "--warmup",
    steps[1],
    ...(a.config ?? []).flatMap((c) => ["--config", c]),
    ...(v.int8 ? ["--int8"] : []),
    ...(v.checkpoint ? ["--checkpoint"] : []),
    ...(v.dora ? ["--dora"] : []),
  ];
  const p = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (p.status !== 0) {
    const last = (p.stderr || String(p.signal)).trim().split("\n").at(-1) ?? "";
    return { why: `lora-ts ${v.name} failed: ${last.slice(0, 200)}` };
  }
  const r = JSON.parse(p.stdout.trim().split("\n").at(-1)!) as {
    sPerStep: number;
    tokPerS: number;
    peakRssMiB: number;
    buildS: number;
  };
  return { sPerStep: r.sPerStep, tokPerS: r.tokPerS, rssMiB: r.peakRssMiB, buildS: r.buildS };
}

function runPeer(config: string, dtype: "fp32" | "bf16", shape: string, steps: [string, string]): Outcome {
  const tmp = mkdtempSync(join(tmpdir(), "peer-"));
  const out = join(tmp, "r.json");
  const p = spawnSync(
    "/usr/bin/python3",
    [
      peerScript,
      "--configs",
      config,
      "--shapes",
      shape,
      "--dtypes",
      dtype,
      "--modes",
      "train",
      "--steps",
      steps[0],
      "--warmup",
      steps[1],
      "--budget-s",
      a["peer-budget"],
      "--no-probe",
      "--idle-wait-s",
      "20",
      "--out",
      out,
    ],
    { encoding: "utf8" },
  );
  try {
    const r = (JSON.parse(readFileSync(out, "utf8")) as { results: Record<string, unknown>[] }).results[0]!;
    if (r["status"] !== "ok" && r["status"] !== "partial") {
      return { why: `torch ${dtype}: ${String(r["status"])}${r["note"] ? ` (${String(r["note"])})` : ""}` };
    }
    return {
      sPerStep: r["median_s"] as number,
      tokPerS: r["tokens_per_s"] as number,
      rssMiB: r["peak_rss_mib"] as number,
    };
  } catch {
    return { why: `torch ${dtype} failed: ${p.stderr.trim().split("\n").at(-1)?.slice(0, 200) ?? ""}` };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** lora-ts's own estimate of the run's peak, in bytes (what `train` prints and refuses with). */
function estimateBytes(kind: ModelKind, targets: string, batch: number, seq: number, v: Variant): number {
  const config = parseModelConfig(MODELS[kind].json, "config.json");
  const lora = makeLoraConfig({
    r: 8,
    lora_alpha: 16,
    lora_dropout: 0.05,
    target_modules: targets.split(","),
    use_dora: v.dora === true,
  });
  const selected = selectTargets(lora, listModules(config), { modelType: config.modelType });
  return estimateTrainMemory({
    config,
    batch,
    seq,
    mode: "lora",
    selected,
    dropout: 0.05,
    int8: v.int8,
    gradientCheckpointing: v.checkpoint,
    dora: v.dora,
  }).bytes;
}

const work = mkdtempSync(join(tmpdir(), "lora-ts-bench-train-"));
const models: Partial<Record<ModelKind, string>> = {};
const ensureModel = (kind: ModelKind) => {
  if (!models[kind]) {
    const dir = join(work, kind);
    mkdirSync(dir);
    // In a child process: the writer's arrays would otherwise stay in this process's heap.
    const args = [
      "dist/bench/write-random-model.js",
      MODELS[kind].shape,
      dir,
      ...(MODELS[kind].bf16 ? ["bfloat16"] : []),
    ];
    execFileSync(process.execPath, args, { stdio: "inherit" });
    models[kind] = dir;
  }
  return models[kind]!;
};

const ratio = (x: number | undefined, y: number | undefined) => (x && y ? `${(x / y).toFixed(2)}×` : "-");
const rows: string[] = [];
const notes: string[] = [];
try {
  for (const config of a.configs.split(",")) {
    const c = CONFIGS[config];
    if (!c) throw new Error(`unknown config ${config} (${Object.keys(CONFIGS).join(", ")})`);
    const big = MODELS[c.model].big;
    const steps: [string, string] = big ? [a["big-steps"], a["big-warmup"]] : [a.steps, a.warmup];
    const variants = [
      ...(a.int8 === "on" ? (big ? [EXACT, INT8, INT8_CKPT] : [EXACT, INT8]) : [EXACT]),
      ...(a.dora ? [DORA] : []),
    ];
    const dir = ensureModel(c.model);
    for (const shape of (big ? a["big-shapes"] : a.shapes).split(",")) {
      const [batch, seq] = shape.split("x").map(Number) as [number, number];
      const fp32o = usePeer ? runPeer(config, "fp32", shape, steps) : null;
      const ours = variants.map((v) => {
        const est = estimateBytes(c.model, c.targets, batch, seq, v);
        const avail = availableMemoryBytes();
        const o: Outcome =
          est > avail
            ? {
                why: `lora-ts ${v.name}: estimated ${(est / GiB).toFixed(1)} GiB > ${(avail / GiB).toFixed(1)} GiB available`,
              }
            : runOurs(dir, c.targets, batch, seq, v, steps);
        return { v, est, o };
      });
      const bf16o = usePeer ? runPeer(config, "bf16", shape, steps) : null;
      for (const o of [fp32o, bf16o, ...ours.map((x) => x.o)])
        if (o && "why" in o) notes.push(`${config} ${shape}: ${o.why}`);
      const fp32 = measured(fp32o);
      const bf16 = measured(bf16o);
      for (const { v, est, o } of ours) {
        const m = measured(o);
        const row =
          `| ${config} | ${shape} | ${v.name} | ${m ? m.sPerStep.toFixed(2) : "-"} | ${m ? m.tokPerS.toFixed(0) : "-"} ` +
          `| ${m ? m.rssMiB.toFixed(0) : "-"} | ${(est / 2 ** 20).toFixed(0)} | ${m?.buildS?.toFixed(1) ?? "-"} ` +
          `| ${fp32 ? fp32.tokPerS.toFixed(0) : "-"} | ${fp32 ? fp32.rssMiB.toFixed(0) : "-"} | ${bf16 ? bf16.tokPerS.toFixed(0) : "-"} ` +
          `| ${ratio(m?.tokPerS, fp32?.tokPerS)} | ${m && fp32 ? (m.rssMiB / fp32.rssMiB).toFixed(2) : "-"} | ${ratio(m?.tokPerS, bf16?.tokPerS)} |`;
        rows.push(row);
        console.log(row);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log(`\nLoRA r=8 training steps (forward, backward, AdamW); ${machineLine()}`);
console.log(
  usePeer
    ? "peer: PyTorch (../shared/peers/torch_lora_bench.py), 2 threads"
    : "peer: not available (no ../shared or no /usr/bin/python3 with torch)",
);
if (a.dora)
  console.log("the dora rows' torch columns are PyTorch's plain LoRA runs of the same configuration");
console.log(
  "| config | BxT | lora-ts | s/step | tok/s | RSS MiB | estimate MiB | build s | torch fp32 tok/s | torch fp32 RSS MiB " +
    "| torch bf16 tok/s | speed vs fp32 | RSS vs fp32 | speed vs bf16 |",
);
console.log(`|${" --- |".repeat(14)}`);
for (const r of rows) console.log(r);
if (notes.length > 0) console.log(`\nNot measured:\n${notes.map((n) => `- ${n}`).join("\n")}`);

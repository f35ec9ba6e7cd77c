/**
 * Training benchmark against the PyTorch peer, in the same run (the host drifts; only same-run ratios
 * count). For each LoRA configuration and shape it alternates: PyTorch fp32, lora-ts, PyTorch bf16
 * autocast, each in its own process, and prints s/step, tokens/s, peak RSS and the ratios. lora-ts runs
 * twice: exact (float32 throughout) and with --base-int8 (frozen linear weights in int8).
 *
 *   npm run bench:train [-- --configs gpt2-c_attn,llama-qv,llama-all --shapes 4x256,8x512 --steps 5]
 *
 * Models are random-weight checkpoints written by the project's own writer: GPT-2-small (124M) and
 * SmolLM-135M shapes. The peer (../shared/peers/torch_lora_bench.py) needs /usr/bin/python3 with
 * torch: `apt-get install python3-torch libopenblas0-pthread`. Without OpenBLAS, Debian's torch 1.13
 * (BLAS_INFO=generic) falls back to the reference BLAS at ~6 GFLOP/s and the peer is ~25× slower than
 * it should be. Without the peer only lora-ts's figures are printed.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeRandomModel } from "../src/models/random-init.js";
import { machineLine } from "./machine.js";
import { GPT2_SMALL, SMOLLM_135M } from "./shapes.js";

const { values: a } = parseArgs({
  options: {
    configs: { type: "string", default: "gpt2-c_attn,llama-qv,llama-all" },
    shapes: { type: "string", default: "4x256,8x512" },
    steps: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    peer: { type: "string", default: "auto" },
    config: { type: "string", multiple: true },
    int8: { type: "string", default: "on" },
  },
});

const CONFIGS: Record<string, { model: "gpt2" | "llama"; targets: string }> = {
  "gpt2-c_attn": { model: "gpt2", targets: "c_attn" },
  "llama-qv": { model: "llama", targets: "q_proj,v_proj" },
  "llama-all": { model: "llama", targets: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj" },
};

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

function runOurs(dir: string, targets: string, batch: number, seq: number, int8 = false): Measure {
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
    a.steps,
    "--warmup",
    a.warmup,
    ...(a.config ?? []).flatMap((c) => ["--config", c]),
    ...(int8 ? ["--int8"] : []),
  ];
  const out = execFileSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 24 });
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as {
    sPerStep: number;
    tokPerS: number;
    peakRssMiB: number;
    buildS: number;
  };
  return { sPerStep: r.sPerStep, tokPerS: r.tokPerS, rssMiB: r.peakRssMiB, buildS: r.buildS };
}

function runPeer(config: string, dtype: "fp32" | "bf16", shape: string): Measure | null {
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
      a.steps,
      "--warmup",
      a.warmup,
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
    if (r["status"] !== "ok" && r["status"] !== "partial") return null;
    return {
      sPerStep: r["median_s"] as number,
      tokPerS: r["tokens_per_s"] as number,
      rssMiB: r["peak_rss_mib"] as number,
    };
  } catch {
    process.stderr.write(`peer ${config} ${dtype} ${shape} failed: ${p.stderr.slice(-300)}\n`);
    return null;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const work = mkdtempSync(join(tmpdir(), "lora-ts-bench-train-"));
const models: Record<string, string> = {};
const ensureModel = (kind: "gpt2" | "llama") => {
  if (!models[kind]) {
    const dir = join(work, kind);
    mkdirSync(dir);
    writeRandomModel(dir, kind === "gpt2" ? GPT2_SMALL : SMOLLM_135M, { seed: 1 });
    models[kind] = dir;
  }
  return models[kind]!;
};

const fmt = (m: Measure | null, f: (m: Measure) => string) => (m ? f(m) : "-");
const ratio = (x: number | undefined, y: number | undefined) => (x && y ? `${(x / y).toFixed(2)}×` : "-");
const rssRatio = (x: Measure | null, y: Measure | null) => (x && y ? (x.rssMiB / y.rssMiB).toFixed(2) : "-");
const rows: string[] = [];
try {
  for (const config of a.configs.split(",")) {
    const c = CONFIGS[config];
    if (!c) throw new Error(`unknown config ${config} (${Object.keys(CONFIGS).join(", ")})`);
    const dir = ensureModel(c.model);
    for (const shape of a.shapes.split(",")) {
      const [batch, seq] = shape.split("x").map(Number) as [number, number];
      const fp32 = usePeer ? runPeer(config, "fp32", shape) : null;
      const ours = runOurs(dir, c.targets, batch, seq);
      const bf16 = usePeer ? runPeer(config, "bf16", shape) : null;
      const int8 = a.int8 === "on" ? runOurs(dir, c.targets, batch, seq, true) : null;
      const row =
        `| ${config} | ${shape} | ${ours.sPerStep.toFixed(2)} | ${ours.tokPerS.toFixed(0)} | ${ours.rssMiB.toFixed(0)} | ${ours.buildS!.toFixed(1)} ` +
        `| ${fmt(fp32, (m) => m.tokPerS.toFixed(0))} | ${fmt(fp32, (m) => m.rssMiB.toFixed(0))} | ${fmt(bf16, (m) => m.tokPerS.toFixed(0))} ` +
        `| ${ratio(ours.tokPerS, fp32?.tokPerS)} | ${rssRatio(ours, fp32)} | ${ratio(ours.tokPerS, bf16?.tokPerS)} ` +
        `| ${fmt(int8, (m) => m.tokPerS.toFixed(0))} | ${fmt(int8, (m) => m.rssMiB.toFixed(0))} | ${fmt(int8, (m) => m.buildS!.toFixed(1))} ` +
        `| ${ratio(int8?.tokPerS, fp32?.tokPerS)} | ${rssRatio(int8, fp32)} | ${ratio(int8?.tokPerS, bf16?.tokPerS)} |`;
      rows.push(row);
      console.log(row);
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
console.log(
  "| config | BxT | lora-ts s/step | lora-ts tok/s | lora-ts RSS MiB | build s | torch fp32 tok/s | torch fp32 RSS MiB | torch bf16 tok/s | speed vs fp32 | RSS vs fp32 | speed vs bf16 " +
    "| int8 tok/s | int8 RSS MiB | int8 build s | int8 speed vs fp32 | int8 RSS vs fp32 | int8 speed vs bf16 |",
);
console.log(`|${" --- |".repeat(18)}`);
for (const r of rows) console.log(r);

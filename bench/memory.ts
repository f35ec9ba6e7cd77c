/**
 * The training-memory estimate (src/train/memory-estimate.ts) against measured peak RSS, on the
 * training benchmark's configurations (bench/train.ts: GPT-2-small c_attn, SmolLM-135M q,v and
 * all-linear, random weights) and in full mode. Each measurement is a real `train()` run in its own
 * process, on rows of exactly --max-length tokens, for a few steps; its peak is
 * process.resourceUsage().maxRSS at the end.
 *
 *   npm run bench:memory [-- --shapes 4x256 --steps 4 --large --max-gib 8]
 *
 * Rows whose estimate is above --max-gib are skipped (said so, not measured), so the default run fits
 * a shared 24 GiB machine; --large adds the 8x512 shape. Measurements run one at a time.
 *
 * One run as a worker (also what test/train/memory-estimate.test.ts spawns):
 *
 *   node dist/bench/memory.js --worker --model DIR --data FILE [--targets a,b | all-linear]
 *     [--mode lora|full] [--batch 4 --seq 256 --steps 4] [--int8] [--threads N]
 *
 * prints one JSON line {"peakBytes", "estimate": {"bytes", "parts"}}.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { defaultTargets, makeLoraConfig } from "../src/lora/config.js";
import { selectTargets } from "../src/lora/targets.js";
import { DEFAULT_MODEL_DIR } from "../src/models/default-model.js";
import { listModules } from "../src/models/modules.js";
import { openModelDir } from "../src/models/open-model.js";
import { writeRandomModel } from "../src/models/random-init.js";
import { estimateTrainMemory, type TrainMemoryEstimate } from "../src/train/memory-estimate.js";
import { train } from "../src/train/trainer.js";
import { machineLine } from "./machine.js";
import { GPT2_SMALL, SMOLLM_135M } from "./shapes.js";

const { values: a } = parseArgs({
  options: {
    worker: { type: "boolean", default: false },
    model: { type: "string" },
    data: { type: "string" },
    targets: { type: "string" },
    mode: { type: "string", default: "lora" },
    batch: { type: "string", default: "4" },
    seq: { type: "string", default: "256" },
    steps: { type: "string", default: "4" },
    int8: { type: "boolean", default: false },
    threads: { type: "string" },
    configs: { type: "string", default: "gpt2-c_attn,llama-qv,llama-all,gpt2-full,llama-full" },
    shapes: { type: "string", default: "4x256" },
    large: { type: "boolean", default: false },
    "max-gib": { type: "string", default: "8" },
  },
});

const LORA = { r: 8, alpha: 16, dropout: 0.05 };

/** A --targets value as train() takes it. */
const targetList = (t: string) => (t === "all-linear" ? t : t.split(","));

/** One training run: what the worker is given. */
interface RunSpec {
  model: string;
  /** LoRA targets (the family's defaults when absent). */
  targets?: string;
  mode: "lora" | "full";
  batch: number;
  seq: number;
  int8: boolean;
  threads?: number;
}

const specFromArgs = (): RunSpec => ({
  model: a.model!,
  targets: a.targets,
  mode: a.mode === "full" ? "full" : "lora",
  batch: Number(a.batch),
  seq: Number(a.seq),
  int8: a.int8,
  threads: a.threads ? Number(a.threads) : undefined,
});

/** The estimate for the run `train()` makes of `spec` in `runWorker`. */
function estimateFor(spec: RunSpec): TrainMemoryEstimate {
  const { config } = openModelDir(spec.model);
  const lora = makeLoraConfig({
    r: LORA.r,
    lora_alpha: LORA.alpha,
    lora_dropout: LORA.dropout,
    target_modules: spec.targets ? targetList(spec.targets) : defaultTargets(config.modelType),
  });
  const selected =
    spec.mode === "lora" ? selectTargets(lora, listModules(config), { modelType: config.modelType }) : [];
  return estimateTrainMemory({ config, ...spec, selected, dropout: LORA.dropout });
}

/** One training run in this process; prints its peak RSS and the estimate. */
async function runWorker(spec: RunSpec, data: string, steps: number): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "lora-ts-bench-memory-"));
  try {
    await train({
      model: spec.model,
      data,
      out: join(work, "out"),
      mode: spec.mode,
      r: LORA.r,
      alpha: LORA.alpha,
      dropout: LORA.dropout,
      ...(spec.targets ? { targets: targetList(spec.targets) } : {}),
      batchSize: spec.batch,
      maxLength: spec.seq,
      maxSteps: steps,
      baseInt8: spec.int8,
      threads: spec.threads,
    });
    const peakBytes = process.resourceUsage().maxRSS * 1024;
    const { bytes, parts } = estimateFor(spec);
    process.stdout.write(`${JSON.stringify({ peakBytes, estimate: { bytes, parts } })}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A plain-text document of at least `tokens` tokens for the default tokenizer (the persona data,
 * repeated): a .txt file is cut into windows of exactly --max-length tokens, so every row is full.
 */
function writeDocument(path: string, tokens: number): void {
  const rows = readFileSync(join(DEFAULT_MODEL_DIR, "data/persona.jsonl"), "utf8").trim().split("\n");
  const text = rows
    .map((l) => JSON.parse(l) as { prompt: string; completion: string })
    .map((r) => `${r.prompt}${r.completion}`)
    .join("\n");
  // The default tokenizer takes about 4 characters per token on this text; 6 leaves a margin.
  const parts: string[] = [];
  for (let n = 0; n < tokens * 6; n += text.length + 1) parts.push(text);
  writeFileSync(path, `${parts.join("\n")}\n`);
}

interface Row {
  config: string;
  shape: string;
  int8: boolean;
  estimate: number;
  peak: number | null;
}

const CONFIGS: Record<string, { model: "gpt2" | "llama"; targets: string | null }> = {
  "gpt2-c_attn": { model: "gpt2", targets: "c_attn" },
  "llama-qv": { model: "llama", targets: "q_proj,v_proj" },
  "llama-all": { model: "llama", targets: "all-linear" },
  "gpt2-full": { model: "gpt2", targets: null },
  "llama-full": { model: "llama", targets: null },
};

function runDriver(): void {
  const self = fileURLToPath(import.meta.url);
  const work = mkdtempSync(join(tmpdir(), "lora-ts-bench-memory-"));
  const models: Record<string, string> = {};
  const ensureModel = (kind: "gpt2" | "llama") => {
    if (!models[kind]) {
      const dir = join(work, kind);
      mkdirSync(dir);
      writeRandomModel(dir, kind === "gpt2" ? GPT2_SMALL : SMOLLM_135M, { seed: 1 });
      // The default model's tokenizer: its ids all lie inside both vocabularies.
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
        copyFileSync(join(DEFAULT_MODEL_DIR, f), join(dir, f));
      }
      models[kind] = dir;
    }
    return models[kind]!;
  };
  const shapes = [...a.shapes.split(","), ...(a.large ? ["8x512"] : [])];
  const cap = Number(a["max-gib"]) * 2 ** 30;
  const steps = Number(a.steps);
  const rows: Row[] = [];
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  try {
    for (const shape of shapes) {
      const [batch, seq] = shape.split("x").map(Number) as [number, number];
      const data = join(work, `doc-${shape}.txt`);
      writeDocument(data, batch * seq * (steps + 1));
      for (const name of a.configs.split(",")) {
        const c = CONFIGS[name];
        if (!c) throw new Error(`unknown config ${name} (${Object.keys(CONFIGS).join(", ")})`);
        for (const int8 of c.targets === null ? [false] : [false, true]) {
          const spec: RunSpec = {
            model: ensureModel(c.model),
            ...(c.targets ? { targets: c.targets } : {}),
            mode: c.targets === null ? "full" : "lora",
            batch,
            seq,
            int8,
          };
          // The estimate first (this process), so a row that would not fit is never started.
          const estimate = estimateFor(spec).bytes;
          let peak: number | null = null;
          if (estimate <= cap) {
            const args = [
              ...["--model", spec.model, "--data", data, "--batch", String(batch), "--seq", String(seq)],
              ...[
                "--steps",
                String(steps),
                "--mode",
                spec.mode,
                ...(c.targets ? ["--targets", c.targets] : []),
              ],
              ...(int8 ? ["--int8"] : []),
            ];
            const out = execFileSync(process.execPath, [self, "--worker", ...args], {
              encoding: "utf8",
              maxBuffer: 1 << 24,
            });
            peak = (JSON.parse(out.trim().split("\n").at(-1)!) as { peakBytes: number }).peakBytes;
          }
          const row: Row = { config: name, shape, int8, estimate, peak };
          rows.push(row);
          console.log(
            `${name} ${shape}${int8 ? " int8" : ""}: estimate ${mib(estimate)} MiB, ` +
              (peak === null ? `skipped (above --max-gib ${a["max-gib"]})` : `measured ${mib(peak)} MiB`),
          );
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`\ntrain() peak RSS after ${steps} steps, LoRA r=8 dropout 0.05; ${machineLine()}`);
  console.log("| config | BxT | base | estimate MiB | measured MiB | estimate / measured |");
  console.log(`|${" --- |".repeat(6)}`);
  for (const r of rows) {
    const ratio = r.peak === null ? "-" : (r.estimate / r.peak).toFixed(2);
    console.log(
      `| ${r.config} | ${r.shape} | ${r.int8 ? "int8" : "float32"} | ${mib(r.estimate)} | ${r.peak === null ? "skipped" : mib(r.peak)} | ${ratio} |`,
    );
  }
  const off = rows.filter((r) => r.peak !== null && Math.abs(r.estimate / r.peak - 1) > 0.25);
  if (off.length > 0) {
    console.log(`\n${off.length} row(s) off by more than 25%`);
    process.exitCode = 1;
  }
}

if (a.worker) await runWorker(specFromArgs(), a.data!, Number(a.steps));
else runDriver();

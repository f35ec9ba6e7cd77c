/**
 * `lora-ts demo` (`npm run demo`): the whole story on the embedded default model, in about a minute on
 * two cores. Generations before training, a LoRA adapter trained on the shipped persona data with the
 * loss curve and the adapter's size against the base, generations after, and a check that the merged
 * model gives the same logits as base + adapter.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import type { CausalLM } from "../infer/causal-lm.js";
import { generate } from "../infer/generate.js";
import { loadCausalLM } from "../infer/load-causal-lm.js";
import { mergeModel } from "../lora/merge-model.js";
import { DEFAULT_MODEL_DIR } from "../models/default-model.js";
import { progressReporter } from "../train/progress.js";
import { reportEvents } from "../train/report.js";
import { checkOutDir, type TrainOptions, train } from "../train/trainer.js";
import { LoraTsError } from "../util/errors.js";

/** The demo's training settings (also the README's example). */
export const DEMO_TRAINING: Omit<TrainOptions, "model" | "data" | "valData" | "out"> = {
  r: 8,
  alpha: 16,
  dropout: 0.05,
  targets: "all-linear",
  lr: 3e-3,
  epochs: 16,
  batchSize: 16,
  maxLength: 64,
  evalEvery: 25,
  schedule: "cosine",
  warmupSteps: 10,
  seed: 0,
};

const SHOWN = 4;
const MERGE_TOLERANCE = 1e-4;

interface Row {
  prompt: string;
  completion: string;
}

function readRows(path: string): Row[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Row);
}

async function answers(lm: CausalLM, prompts: string[], adapter: string | null): Promise<string[]> {
  const tok = lm.tokenizer!;
  const out: string[] = [];
  for (const p of prompts) {
    const ids = tok.encode(p, { addBos: true });
    const next = await generate(lm, [ids], { maxNewTokens: 40, extraFeeds: lm.adapterFeeds(adapter) });
    out.push(tok.decode(next[0]!, { skipSpecial: true }).trim());
  }
  return out;
}

export async function runDemo(
  opts: { model?: string; out?: string; force?: boolean; log?: (s: string) => void } = {},
): Promise<{ maxDiff: number }> {
  const log = opts.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  const model = opts.model ?? DEFAULT_MODEL_DIR;
  const data = join(model, "data/persona.jsonl");
  const heldOut = join(model, "data/persona-heldout.jsonl");
  // A non-empty --out is refused before anything runs, unless --force (the run then replaces it).
  if (opts.out) checkOutDir(opts.out, { force: opts.force, canResume: false });
  const out = opts.out ?? mkdtempSync(join(tmpdir(), "lora-ts-demo-"));
  const shown = readRows(heldOut).slice(0, SHOWN);
  const prompts = shown.map((r) => r.prompt);

  log("lora-ts demo: teach the default model a persona with a LoRA adapter\n");
  log(`base model  ${model}`);
  log(`train data  ${data}  (Pip the parrot: answers start with "Squawk!" and end with "Pip out.")`);
  log(`held out    ${heldOut}\n`);

  const base = await loadCausalLM(model);
  const before = await answers(base, prompts, null);
  await base.release();
  log("== before training (base model), held-out questions ==");
  for (const [i, p] of prompts.entries()) log(`${p.replace("\n", " ")} ${before[i]}`);

  log(`\n== training LoRA r=${DEMO_TRAINING.r} on ${DEMO_TRAINING.targets} ==`);
  await train({ ...DEMO_TRAINING, model, data, valData: heldOut, out, force: opts.force }, [
    progressReporter({}),
    reportEvents(out),
  ]);

  const tuned = await loadCausalLM(model, { adapters: [{ name: "pip", dir: out }] });
  const after = await answers(tuned, prompts, "pip");
  log("\n== after training (base + adapter), the same held-out questions ==");
  for (const [i, p] of prompts.entries()) log(`${p.replace("\n", " ")} ${after[i]}`);

  // Merge, then compare logits of merged vs base + adapter on every shown prompt.
  const merged = join(out, "merged");
  await mergeModel({ model, adapter: out, out: merged });
  const lm = await loadCausalLM(merged);
  let maxDiff = 0;
  for (const p of prompts) {
    const ids = tuned.tokenizer!.encode(p, { addBos: true });
    const a = await tuned.logits(ids, tuned.adapterFeeds("pip"));
    const b = await lm.logits(ids);
    a.forEach((row, t) => {
      row.forEach((v, k) => {
        maxDiff = Math.max(maxDiff, Math.abs(v - b[t]![k]!));
      });
    });
  }
  await tuned.release();
  await lm.release();
  const ok = maxDiff < MERGE_TOLERANCE;
  log(
    `\n== merge check ==\nmerged model (${merged}) vs base + adapter: max |logit difference| ${maxDiff.toExponential(2)} ${ok ? "<" : ">="} ${MERGE_TOLERANCE}: ${ok ? "OK" : "FAILED"}`,
  );
  log(`\nadapter: ${out}  (report: ${join(out, "report.html")})`);
  if (!ok) throw new LoraTsError(`merge check failed: merged and unmerged logits differ by ${maxDiff}`);
  return { maxDiff };
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("train a LoRA adapter on the embedded default model and show before/after (about a minute)")
    .option("--out <dir>", "where the adapter and report go (default: a new temporary folder)")
    .option("--force", "replace a non-empty --out")
    .action(async (f: { out?: string; force?: boolean }) => {
      await runDemo({ out: f.out, force: f.force });
    });
}

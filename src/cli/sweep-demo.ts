/**
 * `lora-ts sweep --demo` (`npm run demo:sweep`, a few minutes on two cores): the paper's two
 * ablations, small, on the embedded default model and its persona data. A fixed-budget sweep (the
 * budget of q_proj at r=8, spread over q; q,v; q,k,v,o as in Table 5), a small r-sweep (Table 6), and
 * one subspace comparison (§7.2) between the r=8 and r=64 adapters of q_proj, trained from different
 * seeds (same-seed runs start from the same A rows), with the library functions of `analyze subspace`.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAdapter } from "../lora/adapter-files.js";
import { chancePhi, compareAdapterSubspaces } from "../lora/subspace.js";
import { DEFAULT_MODEL_DIR } from "../models/default-model.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import { runName, type TargetSet, trainableCount } from "../train/sweep-plan.js";
import { runDir } from "../train/sweep-runner.js";
import { textTable } from "../train/sweep-table.js";
import { LoraTsError } from "../util/errors.js";
import { parseNumber } from "./parse.js";
import { executeSweep } from "./sweep.js";
import type { TrainConfig } from "./train-config.js";

/** The demo's shared training settings: short runs, enough for the losses to separate. */
export const DEMO_SWEEP_TRAINING: TrainConfig = {
  max_steps: 60,
  batch_size: 16,
  max_length: 64,
  lr: 3e-3,
  eval_every: 20,
  schedule: "cosine",
  warmup_steps: 5,
  seed: 0,
};

const Q: TargetSet = { label: "q_proj", value: ["q_proj"] };
const QV: TargetSet = { label: "q_proj,v_proj", value: ["q_proj", "v_proj"] };
const QKVO: TargetSet = {
  label: "q_proj,k_proj,v_proj,o_proj",
  value: ["q_proj", "k_proj", "v_proj", "o_proj"],
};
/** φ is averaged over the top TOP × TOP directions. */
const TOP = 4;

/** Flags the demo takes; any other given flag is refused (the demo's plan is fixed). */
const DEMO_FLAGS = new Set(["demo", "out", "jobs"]);

export async function runSweepDemo(
  flags: Record<string, unknown>,
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<void> {
  for (const [k, v] of Object.entries(flags)) {
    if (DEMO_FLAGS.has(k) || v === undefined) continue;
    if ((k === "memoryCheck" || k === "report" || k === "dataCache") && v === true) continue; // commander's defaults of --no-X
    throw new LoraTsError(
      `--demo: runs a fixed plan; --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is not taken with it (only --out and --jobs)`,
    );
  }
  const out =
    typeof flags["out"] === "string" ? flags["out"] : mkdtempSync(join(tmpdir(), "lora-ts-sweep-demo-"));
  const jobs =
    flags["jobs"] !== undefined
      ? parseNumber("--jobs", flags["jobs"] as string, { integer: true, min: 1 })
      : 1;
  const model = DEFAULT_MODEL_DIR;
  const train: TrainConfig = {
    ...DEMO_SWEEP_TRAINING,
    model,
    data: join(model, "data/persona.jsonl"),
    val_data: join(model, "data/persona-heldout.jsonl"),
  };
  const cfg = openModelDir(model).config;
  const budget = trainableCount(listModules(cfg), Q, 8, cfg.modelType);

  log("lora-ts sweep demo: the LoRA paper's ablation on the default model and its persona data\n");
  log(`== 1. fixed budget (paper Table 5): ${budget} trainable parameters, the budget of q_proj at r=8 ==`);
  const budgetOut = join(out, "budget");
  const b = await executeSweep(
    {
      out: budgetOut,
      train: { ...train, out: budgetOut },
      targets: [Q, QV, QKVO],
      ranks: [],
      budget,
      seeds: 1,
      jobs,
    },
    log,
  );

  log("\n== 2. r-sweep (paper Table 6): r in {1, 8, 64}, two seeds ==");
  const ranksOut = join(out, "ranks");
  const r = await executeSweep(
    {
      out: ranksOut,
      train: { ...train, out: ranksOut },
      targets: [Q, QKVO],
      ranks: [1, 8, 64],
      seeds: 2,
      jobs,
    },
    log,
  );

  // §7.2: r=8 (seed 0) against r=64 (seed 1), both on q_proj.
  const dirA = runDir(ranksOut, runName(Q, 8, 0));
  const dirB = runDir(ranksOut, runName(Q, 64, 1));
  log(`\n== 3. subspace similarity (paper §7.2): q_proj r=8 seed 0 vs r=64 seed 1, top ${TOP} directions ==`);
  const failed = b.failed + r.failed;
  if (
    r.rows.find((x) => x.name === runName(Q, 8, 0))?.status === "failed" ||
    r.rows.find((x) => x.name === runName(Q, 64, 1))?.status === "failed"
  ) {
    throw new LoraTsError(
      `sweep demo: the r=8 or r=64 q_proj run failed (see ${join(ranksOut, "results.json")})`,
    );
  }
  const cmp = compareAdapterSubspaces(loadAdapter(dirA), loadAdapter(dirB), { module: "q_proj" });
  let above = 0;
  const rows = cmp.modules.map((m) => {
    const k = Math.min(TOP, m.phi.length, m.phi[0]?.length ?? 0);
    let top = 0;
    let chance = 0;
    for (let i = 1; i <= k; i++)
      for (let j = 1; j <= k; j++) {
        top += m.phi[i - 1]![j - 1]!;
        chance += chancePhi(i, j, m.d);
      }
    if (top > 5 * chance) above++;
    return [
      m.path,
      String(m.d),
      m.phi[0]![0]!.toFixed(3),
      (top / (k * k)).toFixed(3),
      (chance / (k * k)).toFixed(3),
      m.mean.toFixed(3),
    ];
  });
  log(textTable(["module", "d", "φ(1,1)", `φ(≤${TOP},≤${TOP})`, "chance", "mean φ (8×64)"], rows));
  log("φ = 1: the same directions; chance: what two random subspaces give (max(i, j)/d).");
  log(
    above === rows.length
      ? `In every module the top directions of r=8 and r=64 agree far above chance (> 5×), as in the paper.`
      : `The top directions agree far above chance (> 5×) in ${above} of ${rows.length} modules.`,
  );
  log(`(lora-ts analyze subspace --a ${dirA} --b ${dirB} --module q_proj shows every φ)`);
  log(`\nreports: ${b.report}\n         ${r.report}`);
  if (failed > 0) throw new LoraTsError(`sweep demo: ${failed} runs failed (see results.json in ${out})`);
}

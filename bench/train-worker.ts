/**
 * One training-benchmark configuration in its own process (so peak RSS is per configuration):
 *
 *   node dist/bench/train-worker.js --model DIR --targets c_attn --batch 4 --seq 256 [--steps 5 --warmup 2]
 *     [--int8] [--dropout 0.05] [--profile PREFIX] [--optimization disabled|basic|extended|all]
 *     [--checkpoint] [--dora]
 *
 * Builds the LoRA (--dora: DoRA) training session (r=8, alpha=16, dropout 0.05, PEFT init), then runs full optimizer
 * steps (forward, backward, AdamW) on random tokens and prints one JSON line:
 * {"buildS","sPerStep","tokPerS","peakRssMiB","steps"}.
 */
import { parseArgs } from "node:util";
import { createAdapter } from "../src/lora/adapter.js";
import { makeLoraConfig } from "../src/lora/config.js";
import { selectTargets } from "../src/lora/targets.js";
import { quantizeModelInBackground } from "../src/models/int8-quantize.js";
import { listModules } from "../src/models/modules.js";
import { openModelDir } from "../src/models/open-model.js";
import { queryBlocksFor } from "../src/models/transformer.js";
import { AdamW, clipGradNorm } from "../src/train/optimizer.js";
import { buildTrainStep, shiftLabels } from "../src/train/train-graph.js";
import { Rng } from "../src/util/rng.js";

const { values: a } = parseArgs({
  options: {
    model: { type: "string" },
    targets: { type: "string" },
    batch: { type: "string", default: "4" },
    seq: { type: "string", default: "256" },
    steps: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    threads: { type: "string" },
    config: { type: "string", multiple: true },
    profile: { type: "string" },
    arena: { type: "boolean", default: false },
    int8: { type: "boolean", default: false },
    /** Threads that quantize the int8 weights meanwhile (default: one per core; 0: while building). */
    "int8-workers": { type: "string" },
    /** Causal attention in N query blocks (default: what train picks for --seq; 1: none). */
    "query-blocks": { type: "string" },
    /** Recompute each layer's activations in the backward pass (TrainSetup.checkpointLayers). */
    checkpoint: { type: "boolean", default: false },
    /** DoRA (use_dora): a trained magnitude per output, the weight norm computed every step. */
    dora: { type: "boolean", default: false },
    dropout: { type: "string", default: "0.05" },
    optimization: { type: "string" },
  },
});
const batch = Number(a.batch);
const seq = Number(a.seq);
const model = openModelDir(a.model!);
const targets = a.targets === "all-linear" ? "all-linear" : a.targets!.split(",");
const config = makeLoraConfig({
  r: 8,
  lora_alpha: 16,
  lora_dropout: Number(a.dropout),
  target_modules: targets,
  use_dora: a.dora,
});
const selected = selectTargets(config, listModules(model.config), { modelType: model.config.modelType });
const { adapter } = createAdapter(config, selected, {
  seed: 1,
  baseWeight: (path) => model.weights.readFloat32(`${path}.weight`),
});
const extra = Object.fromEntries((a.config ?? []).map((kv) => kv.split("=") as [string, string]));

const t0 = performance.now();
// --int8-workers 0: quantize on the main thread as the graph is built (the path before worker threads).
const int8Workers = a["int8-workers"] === undefined ? undefined : Number(a["int8-workers"]);
const int8Weights =
  a.int8 && int8Workers !== 0 ? quantizeModelInBackground(model, [], int8Workers) : undefined;
const step = await buildTrainStep(
  model,
  {
    mode: "lora",
    selected,
    dropout: config.lora_dropout,
    int8: a.int8,
    int8Weights,
    checkpointLayers: a.checkpoint,
    queryBlocks: a["query-blocks"] === undefined ? queryBlocksFor(seq) : Number(a["query-blocks"]),
    dora: a.dora,
  },
  {
    threads: a.threads ? Number(a.threads) : undefined,
    config: extra,
    profile: a.profile,
    ...(a.arena ? { memArena: true } : {}),
    ...(a.optimization ? { optimization: a.optimization as "disabled" | "basic" | "extended" | "all" } : {}),
  },
);
const buildS = (performance.now() - t0) / 1000;
const values = step.params.map((p) => adapter.tensors.get(p.name)!.data);
const optimizer = new AdamW(values, { lr: 2e-4, weightDecay: 0 });

const rng = new Rng(7);
const ids = BigInt64Array.from({ length: batch * seq }, () => BigInt(rng.next() % model.config.vocabSize));
const feed = {
  ids,
  attentionMask: new BigInt64Array(batch * seq).fill(1n),
  targets: shiftLabels(ids, batch, seq),
  batch,
  seq,
};
const times: number[] = [];
const total = Number(a.warmup) + Number(a.steps);
for (let i = 0; i < total; i++) {
  const s0 = performance.now();
  const r = await step.run(feed, values, { train: true, dropoutRate: config.lora_dropout, dropoutSeed: i });
  clipGradNorm(r.grads, 1);
  optimizer.update(values, r.grads);
  if (i >= Number(a.warmup)) times.push((performance.now() - s0) / 1000);
}
times.sort((x, y) => x - y);
const sPerStep = times[Math.floor(times.length / 2)]!;
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
process.stdout.write(
  `${JSON.stringify({ buildS, sPerStep, tokPerS: (batch * seq) / sPerStep, peakRssMiB, steps: times.length })}\n`,
);
if (a.profile) step.session.ort.endProfiling();
await step.release();

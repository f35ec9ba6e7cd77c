/**
 * DoRA against PyTorch on the real stories260K model: test/peers/llama_lora_reference.py (an
 * independent float64 Llama + PEFT forward, written from the DoRA paper's equations with the weight
 * norm detached; it reads the adapter lora-ts saved with its own safetensors reader) must give
 *
 * - the logits of `lora-ts logits --adapter DIR` (the compiled CLI: the serving graph fed m / n);
 * - the loss and every gradient, lora_magnitude_vector included, of one training step of
 *   buildTrainStep's graph (the norm computed in the graph from A and B, behind a stop-gradient).
 *
 * The adapter covers q, v, down and the embedding with random non-zero A and B and magnitudes 0.5–1.5
 * times their initial norm, so that m / n is far from 1 and each term of the gradient matters.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { createAdapter } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { buildTrainStep, shiftLabels } from "../../src/train/train-graph.js";
import { Rng } from "../../src/util/rng.js";
import { needsShared, sharedPath } from "../helpers/shared.js";
import { stories260K } from "../helpers/stories.js";
import { needsTorch, runPeer } from "../helpers/torch.js";
import { tempDir } from "../models/fixtures.js";

const skip =
  needsTorch ||
  needsShared(
    "models/stories260K/stories260K.bin",
    "models/stories260K/tok512.bin",
    "models/stories260K/reference.json",
  );

const CLI = join(dirname(fileURLToPath(import.meta.url)), "../../src/cli/main.js");

function maxDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((row, t) => {
    row.forEach((v, i) => {
      m = Math.max(m, Math.abs(v - b[t]![i]!));
    });
  });
  return m;
}

interface StepResult {
  loss: number;
  grads: Record<string, number[]>;
}

test("stories260K DoRA (q, v, down, embedding): CLI logits and a training step's loss and gradients (magnitudes too) equal PyTorch", {
  skip,
}, async () => {
  const ref = JSON.parse(readFileSync(sharedPath("models/stories260K/reference.json"), "utf8")) as {
    greedy_from_bos_200: number[];
  };
  const modelDir = await stories260K();
  const model = openModelDir(modelDir);
  const config = makeLoraConfig({
    r: 4,
    lora_alpha: 6,
    lora_dropout: 0,
    use_dora: true,
    target_modules: ["q_proj", "v_proj", "down_proj", "embed_tokens"],
    rank_pattern: { down_proj: 2 },
  });
  const selected = selectTargets(config, listModules(model.config), { modelType: model.config.modelType });
  const { adapter } = createAdapter(config, selected, {
    seed: 3,
    baseWeight: (path) => model.weights.readFloat32(`${path}.weight`),
  });
  const rng = new Rng(17);
  for (const [key, t] of adapter.tensors) {
    if (key.endsWith(".lora_magnitude_vector"))
      for (let i = 0; i < t.data.length; i++) t.data[i] = t.data[i]! * (0.5 + rng.float());
    else rng.fillNormal(t.data, 0, 0.05);
  }
  const adapterDir = join(tempDir(), "adapter");
  saveAdapter(adapterDir, adapter);

  const ids = [1, ...ref.greedy_from_bos_200.slice(0, 31)];
  // One training step on two rows, the second right-padded, labels on its real tokens only.
  const seq = ids.length;
  const rows = [ids, [...ids.slice(0, 20), ...Array<number>(seq - 20).fill(0)]];
  const mask = rows.map((_, b) => Array.from({ length: seq }, (_, t) => (b === 0 || t < 20 ? 1 : 0)));
  const labels = rows.map((r, b) => r.map((v, t) => (mask[b]![t] ? v : -100)));
  const flat = (x: number[][]) => BigInt64Array.from(x.flat(), (v) => BigInt(v));
  const step = await buildTrainStep(
    model,
    { mode: "lora", selected, dropout: 0, dora: true },
    { threads: 1 },
  );
  assert.equal(step.params.length, 3 * selected.length);
  const ours = await step.run(
    { ids: flat(rows), attentionMask: flat(mask), targets: shiftLabels(flat(labels), 2, seq), batch: 2, seq },
    step.params.map((p) => adapter.tensors.get(p.name)!.data),
    { train: true },
  );
  await step.release();
  model.weights.close();

  const [base, want, refStep] = runPeer<{ results: ({ logits: number[][][] } & StepResult)[] }>(
    "llama_lora_reference.py",
    {
      model_dir: modelDir,
      dtype: "float64",
      jobs: [
        { mode: "logits", adapter: null, ids: [ids] },
        { mode: "logits", adapter: adapterDir, ids: [ids] },
        { mode: "step", adapter: adapterDir, ids: rows, attention_mask: mask, labels },
      ],
    },
  ).results;

  // Logits: tolerance 1e-4 absolute as for plain LoRA (peft-torch.test.ts): float32 against float64.
  const r = spawnSync(
    process.execPath,
    [CLI, "logits", "--model", modelDir, "--adapter", adapterDir, "--ids", ids.join(","), "--json"],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  assert.equal(r.status, 0, r.stderr);
  const got = (JSON.parse(r.stdout) as { logits: number[][] }).logits;
  const effect = maxDiff(want!.logits[0]!, base!.logits[0]!);
  assert.ok(effect > 1e-2, `the DoRA adapter changes the reference logits by only ${effect}`);
  const d = maxDiff(got, want!.logits[0]!);
  console.log(`DoRA: adapter effect ${effect.toFixed(3)}, CLI vs torch max |diff| ${d.toExponential(2)}`);
  assert.ok(d <= 1e-4, `CLI logits vs PyTorch DoRA forward: max |diff| ${d}`);

  // The step: the bounds of torch-step.test.ts (loss rel 1e-6; 1e-7 + 5e-5 · max|torch| per tensor).
  const lossRel = Math.abs(ours.loss - refStep!.loss) / Math.abs(refStep!.loss);
  assert.ok(lossRel <= 1e-6, `loss ${ours.loss} vs torch ${refStep!.loss}`);
  assert.deepEqual(Object.keys(refStep!.grads).sort(), step.params.map((p) => p.name).sort());
  let worst = 0;
  step.params.forEach((p, i) => {
    const g = ours.grads[i]!;
    const w = refStep!.grads[p.name]!;
    const scale = Math.max(...w.map(Math.abs));
    assert.ok(scale > 1e-5, `${p.name}: the reference gradient is ~0`);
    for (let k = 0; k < w.length; k++) {
      const diff = Math.abs(g[k]! - w[k]!);
      worst = Math.max(worst, diff / scale);
      assert.ok(diff <= 1e-7 + 5e-5 * scale, `${p.name}[${k}]: ${g[k]} vs torch ${w[k]}`);
    }
  });
  console.log(
    `DoRA step: loss rel ${lossRel.toExponential(2)}, worst gradient |diff| / max ${worst.toExponential(2)}`,
  );
});

/**
 * --base-int8's weights quantized on worker threads (src/models/int8-quantize.ts) are the very bytes
 * the main thread's quantizeRows gives, for row-major (Llama, bf16 shards) and Conv1D (GPT-2, tied
 * head) weights; a training step built with them has the same loss and gradients as one built
 * quantizing as it goes; a weight that cannot be read is a one-line error naming it.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { quantizeRows } from "../../src/graph/int8.js";
import { int8WeightMax } from "../../src/graph/ort-node.js";
import { createAdapter } from "../../src/lora/adapter.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { parseModelConfig } from "../../src/models/family.js";
import { quantizeModelInBackground } from "../../src/models/int8-quantize.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { buildTrainStep } from "../../src/train/train-graph.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { llamaConfig, randomWeights, tempDir, writeModelDir } from "./fixtures.js";

function bf16ShardedLlama(): string {
  const cfg = llamaConfig({ num_key_value_heads: 2 });
  const weights = randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), 5);
  return writeModelDir(tempDir(), cfg, weights, { dtype: "bfloat16", shards: 3 });
}

for (const [kind, dir] of [
  ["Llama, bf16 in 3 shards", bf16ShardedLlama],
  ["GPT-2 (Conv1D, tied head)", () => tinyModel("gpt2", 3)],
] as const) {
  test(`worker threads quantize exactly as the main thread: ${kind}`, async () => {
    const model = openModelDir(dir());
    const modules = listModules(model.config);
    const source = quantizeModelInBackground(model, [], 2);
    const weights = await source.ready;
    const linear = modules.filter((m) => m.kind === "linear");
    assert.equal(weights.size, new Set(linear.map((m) => m.path)).size);
    for (const m of linear) {
      const name = `${m.path}.weight`;
      const w = weights.get(name)!;
      assert.deepEqual(source.shapes.get(name), { out: m.outFeatures, in: m.inFeatures });
      const want = quantizeRows(
        model.weights.readFloat32(name),
        m.outFeatures,
        m.inFeatures,
        m.fanInFanOut === true,
        int8WeightMax(),
      );
      assert.deepEqual(w.q, want.q, `${name}: Q`);
      assert.deepEqual(w.qT, want.qT, `${name}: Qᵀ`);
      assert.deepEqual(w.scale, want.scale, `${name}: scales`);
    }
    model.weights.close();
  });
}

test("a training step built while the workers quantize equals one quantized as it is built", async () => {
  const model = openModelDir(bf16ShardedLlama());
  const config = makeLoraConfig({ r: 4, lora_alpha: 8, target_modules: "all-linear" });
  const selected = selectTargets(config, listModules(model.config), { modelType: "llama" });
  const { adapter } = createAdapter(config, selected, { seed: 2 });
  // B = 0 would hide the base weights from A's gradient: make the adapter non-trivial.
  for (const [k, t] of adapter.tensors) if (k.includes("lora_B")) t.data.fill(0.01);
  const batch = {
    ids: BigInt64Array.from({ length: 12 }, (_, i) => BigInt((i * 7) % 48)),
    attentionMask: new BigInt64Array(12).fill(1n),
    targets: BigInt64Array.from({ length: 12 }, (_, i) => BigInt((i * 5 + 3) % 48)),
    batch: 2,
    seq: 6,
  };
  const results = [];
  for (const background of [false, true]) {
    const setup = {
      mode: "lora" as const,
      selected,
      dropout: 0,
      int8: true,
      int8Weights: background ? quantizeModelInBackground(model, [], 2) : undefined,
    };
    const step = await buildTrainStep(model, setup, { threads: 1 });
    const values = step.params.map((p) => adapter.tensors.get(p.name)!.data);
    results.push(await step.run(batch, values, { train: true }));
    await step.release();
  }
  const [plain, workers] = results as [(typeof results)[0], (typeof results)[0]];
  assert.equal(workers.loss, plain.loss);
  assert.equal(workers.grads.length, plain.grads.length);
  for (const [i, g] of workers.grads.entries()) assert.deepEqual(g, plain.grads[i]);
  model.weights.close();
});

test("a weight the workers cannot read is a one-line error naming the tensor and file", async () => {
  const dir = tinyModel("llama", 4);
  const model = openModelDir(dir);
  rmSync(join(dir, "model.safetensors")); // opened by the store, gone for the workers
  const source = quantizeModelInBackground(model, [], 2);
  await assert.rejects(source.ready, (e: Error) => {
    assert.match(e.message, /^--base-int8: quantizing \S+\.weight: \S*model\.safetensors: cannot open/);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  model.weights.close();
});

/**
 * Causal attention in query blocks (src/models/query-blocks.ts) changes nothing but the cost: the
 * training step built with 2, 3 or 4 blocks has the loss and gradients of the unblocked step, for
 * grouped-query Llama and GPT-2 shapes, sequences the blocks do not divide evenly, and batches with
 * padding (left and right). The rule's own finite-difference check is in
 * test/graph/grad-symbolic.test.ts; the cache path (generation) never uses blocks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createAdapter } from "../../src/lora/adapter.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { queryBlocksFor } from "../../src/models/transformer.js";
import { buildTrainStep } from "../../src/train/train-graph.js";
import { tinyModel } from "../helpers/tiny-model.js";

async function stepWith(dir: string, blocks: number, seq: number) {
  const model = openModelDir(dir);
  const config = makeLoraConfig({ r: 4, lora_alpha: 8, target_modules: "all-linear" });
  const selected = selectTargets(config, listModules(model.config), { modelType: model.config.modelType });
  const { adapter } = createAdapter(config, selected, { seed: 3 });
  for (const [k, t] of adapter.tensors) if (k.includes("lora_B")) t.data.fill(0.02);
  const step = await buildTrainStep(
    model,
    { mode: "lora", selected, dropout: 0, queryBlocks: blocks },
    { threads: 1 },
  );
  const batch = 3;
  const n = batch * seq;
  const vocab = model.config.vocabSize;
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 7 + 3) % vocab));
  const attentionMask = new BigInt64Array(n).fill(1n);
  const targets = BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 5 + 1) % vocab));
  // Row 1 is padded on the left (3 tokens), row 2 on the right (4 tokens); padding scores nothing.
  for (const i of [seq, seq + 1, seq + 2, 3 * seq - 4, 3 * seq - 3, 3 * seq - 2, 3 * seq - 1]) {
    attentionMask[i] = 0n;
    targets[i] = -100n;
  }
  const values = step.params.map((p) => adapter.tensors.get(p.name)!.data);
  const r = await step.run({ ids, attentionMask, targets, batch, seq }, values, { train: true });
  await step.release();
  model.weights.close();
  return r;
}

for (const [kind, over] of [
  ["llama", { num_key_value_heads: 2 }],
  ["gpt2", {}],
] as const) {
  test(`query blocks give the unblocked step's loss and gradients: ${kind}`, async () => {
    const dir = tinyModel(kind, 9, over);
    const seq = 11;
    const plain = await stepWith(dir, 1, seq);
    for (const blocks of [2, 3, 4]) {
      const r = await stepWith(dir, blocks, seq);
      assert.ok(Math.abs(r.loss - plain.loss) <= 1e-6 * Math.abs(plain.loss), `${blocks} blocks: loss`);
      // Relative to the largest gradient entry of the step: some tensors' gradients are ~0.
      const scale = Math.max(...plain.grads.map((g) => Math.max(...g.map(Math.abs))));
      r.grads.forEach((g, i) => {
        const want = plain.grads[i]!;
        const err = Math.max(...g.map((v, j) => Math.abs(v - want[j]!)));
        assert.ok(err <= 1e-5 * scale, `${blocks} blocks: gradient ${i} off by ${err} (step max ${scale})`);
      });
    }
  });
}

test("train uses query blocks from 512 positions on, 8 from 2048", () => {
  assert.equal(queryBlocksFor(256), 1);
  assert.equal(queryBlocksFor(511), 1);
  assert.equal(queryBlocksFor(512), 4);
  assert.equal(queryBlocksFor(2047), 4);
  assert.equal(queryBlocksFor(2048), 8);
  assert.equal(queryBlocksFor(32768), 8);
});

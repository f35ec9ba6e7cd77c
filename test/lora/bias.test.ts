/** PEFT's bias "all" / "lora_only": biases are trained, saved under PEFT's names, served and merged. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { loadAdapter } from "../../src/lora/adapter-files.js";
import { mergeModel } from "../../src/lora/merge-model.js";
import { openModelDir } from "../../src/models/open-model.js";
import { evaluate } from "../../src/train/evaluate.js";
import { train } from "../../src/train/trainer.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const IDS = [1, 30, 31, 40, 41, 50, 51, 60];

function tinyGpt2(): { model: string; data: string } {
  return { model: tinyModel("gpt2", 8), data: wordData(12) };
}

async function logits(model: string, adapters: { name: string; dir: string }[], use: string | null) {
  const lm = await loadCausalLM(model, { adapters });
  const rows = await lm.logits(IDS, lm.adapterFeeds(use));
  await lm.release();
  return rows.flatMap((r) => Array.from(r));
}

const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));

test('bias "all": trained, saved under PEFT names, merged == unmerged, and none == base', async () => {
  const { model, data } = tinyGpt2();
  const out = tempDir();
  await train({
    model,
    data,
    out,
    targets: ["c_attn"],
    bias: "all",
    r: 2,
    lr: 1e-2,
    maxSteps: 3,
    batchSize: 4,
    threads: 1,
  });
  const adapter = loadAdapter(out);
  const keys = [...adapter.tensors.keys()];
  assert.ok(keys.includes("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias"));
  assert.ok(keys.includes("base_model.model.transformer.h.1.mlp.c_fc.bias"));
  assert.ok(keys.includes("base_model.model.transformer.h.0.attn.c_proj.bias"));
  const base = openModelDir(model);
  const before = base.weights.readFloat32("transformer.h.0.mlp.c_fc.bias");
  base.weights.close();
  const after = adapter.tensors.get("base_model.model.transformer.h.0.mlp.c_fc.bias")!.data;
  assert.ok(maxDiff(Array.from(before), Array.from(after)) > 1e-4, "the bias was trained");

  const merged = join(tempDir(), "merged");
  await mergeModel({ model, adapter: out, out: merged });
  const withAdapter = await logits(model, [{ name: "b", dir: out }], "b");
  assert.ok(maxDiff(withAdapter, await logits(merged, [], null)) < 1e-4);
  // No adapter on a request gives the base model's logits. Not bit for bit: the serving graph with
  // adapter slots and the plain one are different graphs, and onnxruntime, which knows every value's
  // shape, may fuse a layer's MatMul and bias Add in one and not the other (1.4e-6 measured).
  assert.ok(
    maxDiff(await logits(model, [{ name: "b", dir: out }], null), await logits(model, [], null)) < 1e-5,
  );
  // eval with the adapter scores like the merged model.
  const e1 = await evaluate({ model, adapter: out, data });
  const e2 = await evaluate({ model: merged, data });
  assert.ok(Math.abs(e1.loss - e2.loss) < 1e-4, `${e1.loss} vs ${e2.loss}`);
});

test('bias "lora_only" trains only the wrapped layers\' biases, and serves beside a bias-free adapter', async () => {
  const { model, data } = tinyGpt2();
  const a = tempDir();
  const b = tempDir();
  await train({
    model,
    data,
    out: a,
    targets: ["c_attn"],
    bias: "lora_only",
    r: 2,
    lr: 1e-2,
    maxSteps: 2,
    batchSize: 4,
    threads: 1,
  });
  await train({
    model,
    data,
    out: b,
    targets: ["c_fc"],
    r: 2,
    lr: 1e-2,
    maxSteps: 2,
    batchSize: 4,
    threads: 1,
  });
  const biasKeys = [...loadAdapter(a).tensors.keys()].filter((k) => k.endsWith("bias"));
  assert.deepEqual(biasKeys.sort(), [
    "base_model.model.transformer.h.0.attn.c_attn.base_layer.bias",
    "base_model.model.transformer.h.1.attn.c_attn.base_layer.bias",
  ]);
  const both = [
    { name: "a", dir: a },
    { name: "b", dir: b },
  ];
  assert.ok(maxDiff(await logits(model, both, "a"), await logits(model, [both[0]!], "a")) < 1e-5);
  assert.ok(maxDiff(await logits(model, both, "b"), await logits(model, [both[1]!], "b")) < 1e-5);
  assert.equal(maxDiff(await logits(model, both, null), await logits(model, [], null)), 0);
});

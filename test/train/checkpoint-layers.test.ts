/**
 * Layer checkpointing (TrainSetup.checkpointLayers, graph/checkpoint.ts) changes where activations
 * come from, not what is computed: on tiny random Llama (grouped-query attention) and GPT-2 models,
 * the loss and every LoRA gradient of the training step `train` runs (float32, default session
 * settings) equal those without checkpointing, with LoRA dropout on (the same fed masks), with the
 * int8 base weights, and in full fine-tuning. The emitted graph recomputes each layer (about twice
 * the forward products) from a copy that reads the layer's output gradient, so onnxruntime cannot
 * hoist the recomputation into the forward pass.
 *
 * Tolerance: the recomputed activations are the same float32 operations on the same inputs; only
 * the order in which gradient contributions are summed may differ, ~1e-7 relative.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { liveNodes } from "../../src/graph/emit.js";
import type { Node, Value } from "../../src/graph/ir.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { parseModelConfig } from "../../src/models/family.js";
import { gpt2TensorShapes } from "../../src/models/gpt2.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { writeRandomModel } from "../../src/models/random-init.js";
import {
  type Batch,
  buildTrainGraph,
  buildTrainStep,
  shiftLabels,
  type TrainSetup,
} from "../../src/train/train-graph.js";
import { randn, rng } from "../graph/gradcheck.js";
import { LLAMA_ALL_TARGETS } from "../lora/fixtures.js";
import { gpt2Config, llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";

const VOCAB = 19;
const TOL = 1e-6;

function llamaDir(): string {
  const cfg = llamaConfig({
    vocab_size: VOCAB,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  });
  return writeModelDir(
    tempDir(),
    cfg,
    randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), 5),
  );
}

function gpt2Dir(): string {
  const cfg = gpt2Config({
    vocab_size: VOCAB,
    n_embd: 12,
    n_head: 2,
    n_inner: 20,
    n_positions: 16,
    n_layer: 3,
  });
  const shapes = gpt2TensorShapes(parseModelConfig(cfg, "config.json"));
  shapes.delete("lm_head.weight"); // tied to wte
  return writeModelDir(tempDir(), cfg, randomWeights(shapes, 6));
}

/** Two rows of 6 tokens, the second right-padded (mask 0, label -100). */
function batch(): Batch {
  const ids = [3, 7, 11, 2, 5, 9, 4, 8, 15, 6, 0, 0];
  const mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
  const labels = ids.map((id, i) => (mask[i] === 0 ? -100 : id));
  const big = (xs: number[]) => BigInt64Array.from(xs.map(BigInt));
  return {
    ids: big(ids),
    attentionMask: big(mask),
    targets: shiftLabels(big(labels), 2, 6),
    batch: 2,
    seq: 6,
  };
}

function loraSetup(dir: string, targets: string[], dropout: number, int8: boolean) {
  const model = openModelDir(dir);
  const config = makeLoraConfig({ r: 2, lora_alpha: 6, lora_dropout: dropout, target_modules: targets });
  const selected = selectTargets(config, listModules(model.config));
  return { model, setup: { mode: "lora" as const, selected, dropout, int8 } };
}

/** Loss and gradients of one step, with and without checkpointing, from the same random values. */
async function bothWays(dir: string, setup: TrainSetup, dropoutRate = 0) {
  const runs = [];
  for (const checkpointLayers of [false, true]) {
    const model = openModelDir(dir);
    const step = await buildTrainStep(model, { ...setup, checkpointLayers }, { threads: 1 });
    const rand = rng(11);
    const values = step.params.map((p) => {
      const n = p.shape.reduce((a, b) => a * b, 1);
      return setup.mode === "full"
        ? model.weights.readFloat32(p.name)
        : Float32Array.from(randn(rand, n), (v) => 0.3 * v);
    });
    runs.push(await step.run(batch(), values, { train: true, dropoutRate, dropoutSeed: 7 }));
    await step.release();
    model.weights.close();
  }
  return { plain: runs[0]!, ckpt: runs[1]! };
}

function assertSame(r: Awaited<ReturnType<typeof bothWays>>, what: string) {
  assert.ok(
    Math.abs(r.plain.loss - r.ckpt.loss) <= TOL * Math.max(1, Math.abs(r.plain.loss)),
    `${what}: loss`,
  );
  assert.equal(r.ckpt.grads.length, r.plain.grads.length);
  let worst = 0;
  r.plain.grads.forEach((g, i) => {
    const scale = Math.max(1e-3, ...g.map(Math.abs));
    assert.ok(scale > 1e-3, `${what}: gradient ${i} is not all zero`);
    const c = r.ckpt.grads[i]!;
    for (let k = 0; k < g.length; k++) worst = Math.max(worst, Math.abs(g[k]! - c[k]!) / scale);
  });
  assert.ok(worst <= TOL, `${what}: worst |Δgrad| / max|grad| ${worst}`);
  return worst;
}

test("checkpointed layers: Llama loss and every LoRA gradient as without, dropout on", async (t) => {
  const dir = llamaDir();
  const { setup } = loraSetup(dir, [...LLAMA_ALL_TARGETS, "embed_tokens"], 0.25, false);
  const worst = assertSame(await bothWays(dir, setup, 0.25), "llama");
  t.diagnostic(`worst relative difference ${worst.toExponential(2)}`);
});

test("checkpointed layers: Llama with int8 base weights, loss and gradients as without", async () => {
  const dir = llamaDir();
  const { setup } = loraSetup(dir, LLAMA_ALL_TARGETS, 0, true);
  assertSame(await bothWays(dir, setup), "llama int8");
});

test("checkpointed layers: GPT-2 loss and every LoRA gradient as without, dropout on", async () => {
  const dir = gpt2Dir();
  const { setup } = loraSetup(dir, ["c_attn", "c_proj", "c_fc", "wte"], 0.25, false);
  assertSame(await bothWays(dir, setup, 0.25), "gpt2");
});

test("checkpointed layers: GPT-2 full fine-tuning, loss and every weight gradient as without", async () => {
  assertSame(await bothWays(gpt2Dir(), { mode: "full" }), "gpt2 full");
});

/** The matrix products of a node list (attention's, the linear layers', LoRA's). */
const products = (nodes: readonly Node[]) => nodes.filter((n) => n.op === "FusedMatMul" || n.op === "MatMul");

/** Whether `v` depends on `on` through the nodes' inputs. */
function dependsOn(v: Value, on: Value): boolean {
  const seen = new Set<Value>();
  const stack = [v];
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (x === on) return true;
    if (seen.has(x) || !x.producer) continue;
    seen.add(x);
    for (const i of x.producer.inputs) if (i) stack.push(i);
  }
  return false;
}

test("checkpointed layers: the graph recomputes each layer's forward products, gated on the layer's output gradient", () => {
  const dir = llamaDir();
  const { model, setup } = loraSetup(dir, LLAMA_ALL_TARGETS, 0, false);
  const plain = buildTrainGraph(model, setup).graph;
  const ckpt = buildTrainGraph(model, { ...setup, checkpointLayers: true }).graph;
  const layers = model.config.layers;
  // Forward products per layer: 7 linear layers, 14 LoRA products, attention's 2.
  const forward = (g: typeof plain) => {
    const lossIndex = g.nodes.indexOf(g.outputs[0]!.producer!);
    return products(liveNodes(g).filter((n) => g.nodes.indexOf(n) <= lossIndex));
  };
  const perLayer = 7 + 14 + 2;
  assert.equal(forward(ckpt).length, forward(plain).length, "the same forward pass");
  const extra = products(liveNodes(ckpt)).length - products(liveNodes(plain)).length;
  // The recomputation has every forward product but the last LoRA B product and base product of
  // down_proj, whose outputs only feed the layer output (its gradient is given): pruned.
  assert.ok(
    extra >= layers * (perLayer - 2) && extra <= layers * perLayer,
    `${extra} more products for ${layers} layers of ${perLayer}`,
  );

  // The gates: each layer's recomputation reads Reshape(saved input, shape), whose shape reads the
  // gradient flowing into the layer, i.e. (below the top layer) the recomputation of the layer above.
  const lossIndex = ckpt.nodes.indexOf(ckpt.outputs[0]!.producer!);
  const live = liveNodes(ckpt).filter((n) => ckpt.nodes.indexOf(n) > lossIndex);
  const regions = [...ckpt.regions.values()].filter((r) => r.name.startsWith("checkpoint "));
  assert.equal(regions.length, layers);
  const gates = regions.map((r) => {
    const found = live.filter((n) => n.op === "Reshape" && n.inputs[0] === r.inputs[0]);
    assert.equal(found.length, 1, `${r.name}: one gated input`);
    return found[0]!;
  });
  for (let i = 0; i < layers; i++) {
    const shape = gates[i]!.inputs[1]!;
    if (i + 1 < layers)
      assert.ok(
        dependsOn(shape, gates[i + 1]!.outputs[0]!),
        `layer ${i}: gated on layer ${i + 1}'s recomputation`,
      );
  }
  const top = gates[layers - 1]!.inputs[1]!;
  const backwardFloat = live.some((n) => n.outputs.some((v) => v.dtype === "float32" && dependsOn(top, v)));
  assert.ok(backwardFloat, "the top layer is gated on a gradient value");
  // The recomputed attention (a copy of the region) reads the gated input, not the saved one.
  const copies = [...ckpt.regions.values()].filter(
    (r) => r.name === "attention" && ckpt.nodes.indexOf(r.last) > lossIndex,
  );
  assert.equal(copies.length, layers);
  copies.forEach((r) => {
    assert.ok(
      gates.some((gate) => dependsOn(r.inputs[0]!, gate.outputs[0]!)),
      "attention copy reads a gate",
    );
  });
  model.weights.close();
});

test("checkpointed layers: a bf16 checkpoint's weight casts (folded at session start) are not copied", () => {
  const dir = tempDir();
  writeRandomModel(dir, llamaConfig({ vocab_size: VOCAB, hidden_size: 16, intermediate_size: 24 }), {
    dtype: "bfloat16",
  });
  const { model, setup } = loraSetup(dir, ["q_proj", "v_proj"], 0, false);
  const weightCasts = (checkpointLayers: boolean) => {
    const g = buildTrainGraph(model, { ...setup, checkpointLayers }).graph;
    return liveNodes(g).filter((n) => n.op === "Cast" && n.inputs[0] && g.initializers.has(n.inputs[0]!))
      .length;
  };
  const plain = weightCasts(false);
  assert.ok(plain >= 9 * model.config.layers, `${plain} weight casts`);
  assert.equal(weightCasts(true), plain);
  model.weights.close();
});

/**
 * DoRA served unmerged (inject.ts "fed" scaling, AdapterSet's factors f = m / n) against the same
 * adapter merged into the weights by hand with dora.ts's doraMergedWeight, on tiny random Llama and
 * GPT-2 (Conv1D) models; and a plain LoRA adapter served beside a DoRA one gives
 * the logits it gives alone.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { type Adapter, createAdapter, loraKeys, magnitudeKey } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { doraMergedWeight } from "../../src/lora/dora.js";
import { selectTargets } from "../../src/lora/targets.js";
import { parseModelConfig } from "../../src/models/family.js";
import { gpt2TensorShapes } from "../../src/models/gpt2.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { listModules } from "../../src/models/modules.js";
import { Rng } from "../../src/util/rng.js";
import { gpt2Config, llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";

type Weights = ReturnType<typeof randomWeights>;

interface Fixture {
  config: Record<string, unknown>;
  weights: Weights;
}

function llama(): Fixture {
  const config = llamaConfig();
  return { config, weights: randomWeights(llamaTensorShapes(parseModelConfig(config, "config.json")), 3) };
}

function gpt2(): Fixture {
  const config = gpt2Config();
  const shapes = gpt2TensorShapes(parseModelConfig(config, "config.json"));
  shapes.delete("lm_head.weight");
  return { config, weights: randomWeights(shapes, 4) };
}

/** A DoRA (or LoRA) adapter with random A, B and magnitudes 0.5–1.5 times their initial norm. */
function randomAdapter(fx: Fixture, targets: string[], seed: number, dora: boolean): Adapter {
  const cfg = parseModelConfig(fx.config, "config.json");
  const config = makeLoraConfig({ r: 3, lora_alpha: 5, target_modules: targets, use_dora: dora });
  const selected = selectTargets(config, listModules(cfg), { modelType: cfg.modelType });
  const { adapter } = createAdapter(config, selected, {
    seed,
    baseWeight: (path) => fx.weights.get(`${path}.weight`)!.data,
  });
  const rng = new Rng(seed + 1);
  for (const [key, t] of adapter.tensors) {
    if (key.endsWith(".lora_magnitude_vector"))
      for (let i = 0; i < t.data.length; i++) t.data[i] = t.data[i]! * (0.5 + rng.float());
    else rng.fillNormal(t.data, 0, 0.2);
  }
  return adapter;
}

/** The weights with each adapted module's W replaced by DoRA's (m / n) ⊙ (W + s·B·A). */
function mergedWeights(fx: Fixture, adapter: Adapter): Weights {
  const cfg = parseModelConfig(fx.config, "config.json");
  const selected = selectTargets(adapter.config, listModules(cfg), { modelType: cfg.modelType });
  const out: Weights = new Map([...fx.weights].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
  for (const s of selected) {
    const keys = loraKeys(s.path, s.kind);
    const W = out.get(`${s.path}.weight`)!;
    W.data = doraMergedWeight(
      adapter.tensors.get(magnitudeKey(s.path))!.data,
      fx.weights.get(`${s.path}.weight`)!.data,
      adapter.tensors.get(keys.A)!,
      adapter.tensors.get(keys.B)!,
      s.scaling,
      { fanInFanOut: s.kind === "linear" && s.fanInFanOut, embedding: s.kind === "embedding" },
    );
  }
  return out;
}

const IDS = [1, 7, 12, 3, 30, 21, 5, 44, 9];

async function logits(dir: string, adapters: { name: string; dir: string }[] = [], use?: string) {
  const lm = await loadCausalLM(dir, { adapters });
  try {
    const ids = IDS.map((i) => i % lm.config.vocabSize);
    return (await lm.logits(ids, lm.adapterFeeds(use ?? null))).flatMap((r) => [...r]);
  } finally {
    await lm.release();
  }
}

function maxDiff(a: number[], b: number[]): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

for (const [name, make, targets, loraTargets] of [
  ["Llama", llama, ["q_proj", "v_proj", "down_proj", "embed_tokens"], ["k_proj", "v_proj"]],
  // (not wte: merging it by hand would change the tied head too, which the unmerged adapter does not)
  ["GPT-2 (Conv1D)", gpt2, ["c_attn", "c_fc"], ["c_proj"]],
] as const) {
  test(`${name}: a DoRA adapter served unmerged == merged by hand within 1e-4; a LoRA adapter beside it is unchanged`, async () => {
    const fx = make();
    const base = writeModelDir(tempDir(), fx.config, fx.weights);
    const dora = randomAdapter(fx, [...targets], 5, true);
    const lora = randomAdapter(fx, [...loraTargets], 6, false);
    const doraDir = join(tempDir(), "dora");
    const loraDir = join(tempDir(), "lora");
    saveAdapter(doraDir, dora);
    saveAdapter(loraDir, lora);
    const merged = writeModelDir(tempDir(), fx.config, mergedWeights(fx, dora));

    const both = [
      { name: "dora", dir: doraDir },
      { name: "lora", dir: loraDir },
    ];
    const baseLogits = await logits(base);
    const unmerged = await logits(base, both, "dora");
    const byHand = await logits(merged);
    assert.ok(maxDiff(baseLogits, unmerged) > 0.1, "the DoRA adapter must change the logits");
    const d = maxDiff(unmerged, byHand);
    assert.ok(d < 1e-4, `unmerged vs merged: max |diff| ${d}`);

    const loraAlone = await logits(base, [{ name: "lora", dir: loraDir }], "lora");
    const loraBeside = await logits(base, both, "lora");
    assert.ok(maxDiff(loraAlone, loraBeside) < 1e-5, "a LoRA adapter beside a DoRA one");
    assert.ok(maxDiff(baseLogits, await logits(base, both)) < 1e-5, "no adapter: the base model");
  });
}

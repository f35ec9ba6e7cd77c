/**
 * The sweep's plan: trainable counts against r·(in+out) summed by hand for two models (the embedded
 * default Llama, and a GPT-2 shape whose c_attn is a Conv1D 768→2304), budget mode's choice of r
 * (closest, ties to the smaller), run names and the --r list.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { parseModelConfig } from "../../src/models/family.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import {
  budgetRank,
  parseRanks,
  planGrid,
  runName,
  type TargetSet,
  targetSlug,
  trainableCount,
} from "../../src/train/sweep-plan.js";
import { gpt2Config } from "../models/fixtures.js";

const set = (label: string): TargetSet => ({ label, value: label.split(",") });

test("default model: counts are r·Σ(in+out) by hand; the budget of q_proj at r=8 gives q,v r=5 and q,k,v,o r=2", () => {
  const cfg = openModelDir(DEFAULT_MODEL_DIR).config;
  const modules = listModules(cfg);
  // hidden 256, 8 heads × 32, 4 kv heads × 32, 4 layers: q 256→256, k 256→128, v 256→128, o 256→256.
  const layers = 4;
  const q = 256 + 256;
  const k = 256 + 128;
  const v = 256 + 128;
  const o = 256 + 256;
  for (const r of [1, 2, 8, 64]) {
    assert.equal(trainableCount(modules, set("q_proj"), r, cfg.modelType), layers * r * q);
    assert.equal(trainableCount(modules, set("q_proj,v_proj"), r, cfg.modelType), layers * r * (q + v));
    assert.equal(
      trainableCount(modules, set("q_proj,k_proj,v_proj,o_proj"), r, cfg.modelType),
      layers * r * (q + k + v + o),
    );
  }
  const budget = layers * 8 * q; // 16384
  const runs = planGrid({
    modules,
    modelType: cfg.modelType,
    targets: [set("q_proj"), set("q_proj,v_proj"), set("q_proj,k_proj,v_proj,o_proj")],
    ranks: [],
    budget,
    seeds: 1,
    firstSeed: 0,
  });
  // q,v: 3584 per r: 16384/3584 = 4.57, r=5 (17920, off 1536) beats r=4 (14336, off 2048).
  // q,k,v,o: 7168 per r: 2.29, r=2 (14336, off 2048) beats r=3 (21504, off 5120).
  assert.deepEqual(
    runs.map((x) => [x.targets.label, x.r, x.trainable]),
    [
      ["q_proj", 8, 16384],
      ["q_proj,v_proj", 5, 17920],
      ["q_proj,k_proj,v_proj,o_proj", 2, 14336],
    ],
  );
});

test("GPT-2 shape: c_attn is a Conv1D 768→2304, counted as r·(768+2304) per layer", () => {
  const cfg = parseModelConfig(
    gpt2Config({ n_embd: 768, n_head: 12, n_layer: 2, n_inner: null }),
    "config.json",
  );
  const modules = listModules(cfg);
  const cAttn = modules.find((m) => m.path.endsWith("attn.c_attn"))!;
  assert.deepEqual([cAttn.inFeatures, cAttn.outFeatures, cAttn.fanInFanOut], [768, 2304, true]);
  const layers = 2;
  const attn = 768 + 2304;
  // "c_proj" is a suffix of both attn.c_proj (768→768) and mlp.c_proj (3072→768).
  const proj = 768 + 768 + (3072 + 768);
  assert.equal(trainableCount(modules, set("c_attn"), 4, cfg.modelType), layers * 4 * attn);
  assert.equal(trainableCount(modules, set("c_attn,c_proj"), 3, cfg.modelType), layers * 3 * (attn + proj));
  const budget = layers * 4 * attn; // 24576
  const runs = planGrid({
    modules,
    modelType: cfg.modelType,
    targets: [set("c_attn"), set("c_attn,c_proj")],
    ranks: [],
    budget,
    seeds: 2,
    firstSeed: 5,
  });
  // c_attn,c_proj: 16896 per r: 24576/16896 = 1.45, r=1 (off 7680) beats r=2 (33792, off 9216).
  assert.deepEqual(
    runs.map((x) => [x.name, x.r, x.seed, x.trainable]),
    [
      ["c_attn-r4-s5", 4, 5, 24576],
      ["c_attn-r4-s6", 4, 6, 24576],
      ["c_attn+c_proj-r1-s5", 1, 5, 16896],
      ["c_attn+c_proj-r1-s6", 1, 6, 16896],
    ],
  );
});

test("budgetRank: closest r, ties go to the smaller r, never below 1", () => {
  const per10 = (r: number) => 10 * r;
  assert.equal(budgetRank(per10, 15), 1); // 10 and 20 are both 5 away
  assert.equal(budgetRank(per10, 16), 2);
  assert.equal(budgetRank(per10, 34), 3);
  assert.equal(budgetRank(per10, 35), 3); // 30 and 40 tie
  assert.equal(budgetRank(per10, 1), 1);
  assert.equal(budgetRank(per10, 1e6), 100000);
});

test("planGrid: r mode keeps a set that selects nothing (trainable null, with the reason); budget mode refuses it", () => {
  const cfg = openModelDir(DEFAULT_MODEL_DIR).config;
  const modules = listModules(cfg);
  const runs = planGrid({
    modules,
    targets: [set("q_proj"), set("nope")],
    ranks: [1, 4],
    seeds: 1,
    firstSeed: 0,
  });
  assert.deepEqual(
    runs.map((x) => [x.name, x.trainable]),
    [
      ["q_proj-r1-s0", 2048],
      ["q_proj-r4-s0", 8192],
      ["nope-r1-s0", null],
      ["nope-r4-s0", null],
    ],
  );
  assert.match(runs[2]!.note!, /"nope" matches no module/);
  assert.throws(
    () => planGrid({ modules, targets: [set("nope")], ranks: [], budget: 100, seeds: 1, firstSeed: 0 }),
    /--targets "nope": .*matches no module/,
  );
  assert.throws(
    () => planGrid({ modules, targets: [set("q_proj"), set("q_proj")], ranks: [1], seeds: 1, firstSeed: 0 }),
    /two runs would share the folder runs\/q_proj-r1-s0/,
  );
});

test("run names: plain sets read as typed, regexes get a hash so that two never collide", () => {
  assert.equal(runName(set("q_proj,v_proj"), 8, 2), "q_proj+v_proj-r8-s2");
  const a = targetSlug("model\\.layers\\.0\\..*");
  const b = targetSlug("model\\.layers\\.0\\.*.");
  assert.match(a, /^[\w.+-]+-[0-9a-f]{8}$/);
  assert.notEqual(a, b);
  assert.equal(targetSlug("all-linear"), "all-linear");
});

test("parseRanks: positive integers, no repeats; each error names the flag", () => {
  assert.deepEqual(parseRanks("--r", "1, 2,4,8,64"), [1, 2, 4, 8, 64]);
  assert.throws(
    () => parseRanks("--r", "1,0"),
    /^LoraTsError: --r: expected comma-separated positive integers, got "1,0"$/,
  );
  assert.throws(() => parseRanks("--r", "1,,2"), /--r: expected/);
  assert.throws(() => parseRanks("--r", "2.5"), /--r: expected/);
  assert.throws(() => parseRanks("sweep.r", "4,4"), /sweep.r: r=4 is given twice/);
});

/**
 * LoRA on real model graphs: unmerged adapter == merged model, B = 0 == base (bit for bit), several
 * named adapters on one session, linear combination [1, 0] == the first adapter, and the CLI flags.
 */
import assert from "node:assert/strict";
import { cpSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { type Adapter, createAdapter } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { combineAdapters } from "../../src/lora/merge.js";
import { mergeModel } from "../../src/lora/merge-model.js";
import { selectTargets } from "../../src/lora/targets.js";
import { parseModelConfig } from "../../src/models/family.js";
import { gpt2TensorShapes } from "../../src/models/gpt2.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { LoraTsError } from "../../src/util/errors.js";
import { Rng } from "../../src/util/rng.js";
import { runCli } from "../helpers/cli.js";
import { fileHashes } from "../helpers/file-hashes.js";
import { needsShared } from "../helpers/shared.js";
import { stories260K } from "../helpers/stories.js";
import { gpt2Config, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";
import { LLAMA_ALL_TARGETS } from "./fixtures.js";

const IDS = [1, 403, 407, 261, 378, 1, 25, 62, 3, 91, 200, 311];

/** An adapter on `targets` with random A and non-zero random B (or B = 0 when zeroB). */
function randomAdapter(
  modelDir: string,
  targets: string[],
  seed: number,
  opts: { zeroB?: boolean; r?: number } = {},
): Adapter {
  const model = openModelDir(modelDir);
  const config = makeLoraConfig({ r: opts.r ?? 4, lora_alpha: 8, target_modules: targets });
  const selected = selectTargets(config, listModules(model.config), { modelType: model.config.modelType });
  model.weights.close();
  const { adapter } = createAdapter(config, selected, { seed });
  const rng = new Rng(seed + 1);
  for (const [key, t] of adapter.tensors) {
    if (opts.zeroB && /lora_B|lora_embedding_B/.test(key)) t.data.fill(0);
    else if (!opts.zeroB) rng.fillNormal(t.data, 0, 0.1);
  }
  return adapter;
}

/** Logits of IDS (taken modulo the vocabulary) with the named adapter (default: the first given). */
async function logitsOf(model: string, adapters: { name: string; dir: string }[] = [], use?: string | null) {
  const lm = await loadCausalLM(model, { adapters });
  const ids = IDS.map((i) => i % lm.config.vocabSize);
  const rows = await lm.logits(ids, lm.adapterFeeds(use === undefined ? (adapters[0]?.name ?? null) : use));
  await lm.release();
  return rows;
}

/** sha256 of every file in `dir` (and below), by relative path. */

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0;
  a.forEach((row, t) => {
    row.forEach((v, i) => {
      m = Math.max(m, Math.abs(v - b[t]![i]!));
    });
  });
  return m;
}

async function stories(): Promise<string> {
  const dir = await stories260K();
  return dir;
}

const skip = needsShared("models/stories260K/stories260K.bin");

test("stories260K: an adapter on q,k,v,o,gate,up,down and the embedding, unmerged == merged within 1e-4", {
  skip,
}, async () => {
  const model = await stories();
  const adapterDir = join(tempDir(), "adapter");
  saveAdapter(adapterDir, randomAdapter(model, LLAMA_ALL_TARGETS, 7));
  const merged = join(tempDir(), "merged");
  const { merged: names } = await mergeModel({ model, adapter: adapterDir, out: merged });
  assert.equal(names.length, 5 * 7 + 1);
  const base = await logitsOf(model);
  const unmergedLogits = await logitsOf(model, [{ name: "a", dir: adapterDir }]);
  const mergedLogits = await logitsOf(merged);
  assert.ok(maxDiff(base, unmergedLogits) > 0.1, "the adapter must change the logits");
  const d = maxDiff(unmergedLogits, mergedLogits);
  assert.ok(d < 1e-4, `unmerged vs merged: max |diff| ${d}`);
});

test("stories260K: an adapter with B = 0 gives bit-identical logits to the base model", {
  skip,
}, async () => {
  const model = await stories();
  const adapterDir = join(tempDir(), "zero");
  saveAdapter(adapterDir, randomAdapter(model, LLAMA_ALL_TARGETS, 3, { zeroB: true }));
  const base = await logitsOf(model);
  const withZero = await logitsOf(model, [{ name: "z", dir: adapterDir }]);
  assert.equal(maxDiff(base, withZero), 0);
  for (const [t, row] of base.entries()) {
    assert.deepEqual(new Uint8Array(row.buffer), new Uint8Array(withZero[t]!.buffer));
  }
});

test("stories260K: two named adapters on one session, --use, none, and linear combination [1, 0]", {
  skip,
}, async () => {
  const model = await stories();
  const a = join(tempDir(), "a");
  const b = join(tempDir(), "b");
  saveAdapter(a, randomAdapter(model, ["q_proj", "v_proj"], 11));
  saveAdapter(b, randomAdapter(model, ["k_proj", "o_proj", "up_proj"], 12, { r: 2 }));
  const both = [
    { name: "a", dir: a },
    { name: "b", dir: b },
  ];
  const lm = await loadCausalLM(model, { adapters: both });
  const viaA = await lm.logits(IDS, lm.adapterFeeds("a"));
  const viaB = await lm.logits(IDS, lm.adapterFeeds("b"));
  const viaNone = await lm.logits(IDS, lm.adapterFeeds(null));
  await lm.release();
  assert.ok(maxDiff(viaA, await logitsOf(model, [{ name: "a", dir: a }], "a")) < 1e-5);
  assert.ok(maxDiff(viaB, await logitsOf(model, [{ name: "b", dir: b }], "b")) < 1e-5);
  assert.equal(maxDiff(viaNone, await logitsOf(model)), 0);
  assert.ok(maxDiff(viaA, viaB) > 0.1);

  // Linear combination with weights [1, 0] (equal ranks) reproduces the first adapter.
  const a2 = join(tempDir(), "a2");
  saveAdapter(a2, randomAdapter(model, ["q_proj", "v_proj"], 13));
  const { loadAdapter } = await import("../../src/lora/adapter-files.js");
  const combined = join(tempDir(), "combined");
  saveAdapter(combined, combineAdapters([loadAdapter(a), loadAdapter(a2)], [1, 0], "linear"));
  const d = maxDiff(viaA, await logitsOf(model, [{ name: "c", dir: combined }]));
  assert.ok(d < 1e-4, `combination [1, 0] vs first adapter: ${d}`);

  // The CLI: logits with --use, generate with two adapters.
  const cliLogits = (args: string[]) => {
    const r = runCli(["logits", "--model", model, "--ids", IDS.join(","), "--json", ...args]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { logits: number[][] }).logits.map((row) => Float32Array.from(row));
  };
  const named = ["--adapter", `a=${a}`, "--adapter", `b=${b}`];
  assert.ok(maxDiff(cliLogits([...named, "--use", "b"]), viaB) < 1e-5);
  assert.ok(maxDiff(cliLogits(["--adapter", a]), viaA) < 1e-5);
  const gen = runCli([
    "generate",
    "--model",
    model,
    ...named,
    "--use",
    "a",
    "--prompt-ids",
    "1",
    "--max-new-tokens",
    "8",
    "--json",
  ]);
  assert.equal(gen.code, 0, gen.stderr);
  assert.equal((JSON.parse(gen.stdout) as { ids: number[] }).ids.length, 8);
  const noUse = runCli(["generate", "--model", model, ...named, "--prompt-ids", "1"]);
  assert.equal(noUse.code, 1);
  assert.match(noUse.stderr, /^error: several adapters are loaded \(a, b\): choose one with --use\n$/);
});

test("GPT-2 (Conv1D, fan_in_fan_out): c_attn + c_fc + wte adapter, unmerged == merged; an existing --out is refused, --force replaces it, the base is never written; merge --dtype bf16", async () => {
  const cfg = gpt2Config();
  const shapes = gpt2TensorShapes(parseModelConfig(cfg, "config.json"));
  shapes.delete("lm_head.weight");
  const model = writeModelDir(tempDir(), cfg, randomWeights(shapes, 21));
  const adapterDir = join(tempDir(), "adapter");
  saveAdapter(adapterDir, randomAdapter(model, ["c_attn", "c_fc", "wte"], 5));
  const baseFiles = fileHashes(model);
  const merged = join(tempDir(), "merged");
  const r = runCli(["merge", "--model", model, "--adapter", adapterDir, "--out", merged]);
  assert.equal(r.code, 0, r.stderr);
  const viaX = await logitsOf(model, [{ name: "x", dir: adapterDir }]);
  const d = maxDiff(viaX, await logitsOf(merged));
  assert.ok(d < 1e-4, `unmerged vs merged: ${d}`);
  assert.deepEqual(fileHashes(model), baseFiles, "merge only reads the base");

  // Writing over an existing, non-empty folder needs --force: an earlier merge, and the base model's
  // own folder, are refused and left byte for byte as they were, with nothing written beside them.
  const other = join(tempDir(), "adapter2");
  saveAdapter(other, randomAdapter(model, ["c_attn", "c_fc", "wte"], 9));
  const mergedFiles = fileHashes(merged);
  for (const out of [merged, model]) {
    const again = runCli(["merge", "--model", model, "--adapter", other, "--out", out]);
    assert.equal(again.code, 1, again.stderr);
    assert.equal(again.stderr, `error: ${out}: already exists and is not empty\n`);
    assert.equal(again.stdout, "");
  }
  assert.deepEqual(fileHashes(model), baseFiles, "a refused merge leaves the base untouched");
  assert.deepEqual(fileHashes(merged), mergedFiles, "a refused merge leaves the existing output untouched");
  assert.deepEqual(readdirSync(dirname(merged)), ["merged"]);

  // The base model's files are never written, whatever the flags (issue #12): an --out that is the base
  // folder, reaches it through a symlink, lies inside it or contains it is refused with --force too,
  // in one line naming --out and the reason, before anything is written.
  const link = join(tempDir(), "link-to-base");
  symlinkSync(model, link);
  // A copy of the base one level down, so that the folder containing it is a fresh temporary one.
  const parent = tempDir();
  const nested = join(parent, "base");
  cpSync(model, nested, { recursive: true });
  const cases: [string, string, RegExp][] = [
    [model, model, /is the base model's folder/],
    [model, link, /is the base model's folder/],
    [link, model, /is the base model's folder/],
    [model, join(model, "merged"), /is inside the base model's folder/],
    [model, join(link, "sub", "merged"), /is inside the base model's folder/],
    [nested, parent, /contains the base model's folder/],
  ];
  for (const [base, out, why] of cases) {
    const refused = runCli(["merge", "--model", base, "--adapter", other, "--out", out, "--force"]);
    assert.equal(refused.code, 1, `--out ${out}: ${refused.stderr}`);
    assert.match(refused.stderr, /^error: --out [^\n]*: [^\n]*, which is only ever read\n$/);
    assert.ok(refused.stderr.startsWith(`error: --out ${out}: `), refused.stderr);
    assert.match(refused.stderr, why);
    assert.equal(refused.stdout, "");
    for (const m of [model, nested])
      assert.deepEqual(fileHashes(m), baseFiles, `merge --out ${out} --force leaves the base untouched`);
  }
  assert.deepEqual(readdirSync(parent), ["base"], "nothing is written beside the base");
  // The library refuses it too.
  await assert.rejects(
    mergeModel({ model, adapter: other, out: model, force: true }),
    (e: Error) => e instanceof LoraTsError && /is the base model's folder/.test(e.message),
  );
  assert.deepEqual(fileHashes(model), baseFiles);

  // --force replaces the existing output as a whole (a file only the old folder had is gone) with the
  // other adapter's merge; the base is still untouched.
  writeFileSync(join(merged, "stale.txt"), "left by the earlier merge");
  const forced = runCli(["merge", "--model", model, "--adapter", other, "--out", merged, "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  // c_attn and c_fc in each layer, and wte.
  assert.equal(forced.stdout, `merged ${2 * (cfg["n_layer"] as number) + 1} weights; wrote ${merged}\n`);
  assert.deepEqual(Object.keys(fileHashes(merged)).sort(), Object.keys(mergedFiles).sort());
  assert.deepEqual(readdirSync(dirname(merged)), ["merged"], "the old folder is removed, not left beside it");
  assert.deepEqual(fileHashes(model), baseFiles, "a --force merge leaves the base untouched");
  const mergedAgain = await logitsOf(merged);
  const viaOther = await logitsOf(model, [{ name: "y", dir: other }]);
  assert.ok(
    maxDiff(viaOther, mergedAgain) < 1e-4,
    `unmerged vs --force merged: ${maxDiff(viaOther, mergedAgain)}`,
  );
  assert.ok(maxDiff(viaX, mergedAgain) > 1e-2, "the output is the new merge, not the old one");
  const bf16 = join(tempDir(), "merged-bf16");
  assert.equal(
    runCli(["merge", "--model", model, "--adapter", adapterDir, "--out", bf16, "--dtype", "bf16"]).code,
    0,
  );
  const m = openModelDir(bf16);
  assert.equal(m.weights.info("transformer.h.0.attn.c_attn.weight").dtype, "bfloat16");
  m.weights.close();
});

test("an adapter whose shapes do not fit the model is a one-line error naming the key", async () => {
  const cfg = gpt2Config();
  const shapes = gpt2TensorShapes(parseModelConfig(cfg, "config.json"));
  shapes.delete("lm_head.weight");
  const model = writeModelDir(tempDir(), cfg, randomWeights(shapes, 22));
  const other = writeModelDir(
    tempDir(),
    gpt2Config({ n_embd: 12 }),
    randomWeights(
      (() => {
        const s = gpt2TensorShapes(parseModelConfig(gpt2Config({ n_embd: 12 }), "config.json"));
        s.delete("lm_head.weight");
        return s;
      })(),
      23,
    ),
  );
  const adapterDir = join(tempDir(), "adapter");
  saveAdapter(adapterDir, randomAdapter(other, ["c_attn"], 5));
  const r = runCli(["logits", "--model", model, "--adapter", adapterDir, "--ids", "1,2"]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^error: .*tensor "base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight": shape \[4, 12\].*\n$/,
  );
});

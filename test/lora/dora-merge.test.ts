/**
 * Merging a DoRA adapter (use_dora) and the places that refuse one:
 * - mergeModule gives (m / n) ⊙ (W + s·B·A) per output, against a float64 computation written here
 *   from PEFT's equations, for a linear [out, in], a Conv1D [in, out] and an embedding [vocab, dim];
 * - `lora-ts merge` writes it (and leaves the base's files alone);
 * - combine, the subspace and amplification analyses and `export gguf-adapter` refuse in one line
 *   instead of ignoring the magnitudes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { type Adapter, loraKeys, magnitudeKey } from "../../src/lora/adapter.js";
import { loadAdapter } from "../../src/lora/adapter-files.js";
import { adapterAmplification } from "../../src/lora/amplification.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { adapterDelta, combineAdapters, mergeModule } from "../../src/lora/merge.js";
import { compareAdapterSubspaces } from "../../src/lora/subspace.js";
import { openModelDir } from "../../src/models/open-model.js";
import { runCli } from "../helpers/cli.js";
import { fileHashes } from "../helpers/file-hashes.js";
import { writeRandomAdapter } from "../helpers/random-adapter.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { maxAbsDiff, randomArray, tempDir } from "./fixtures.js";

/** W' [out][in] = m_o / ‖V_o‖ · V_o with V = W + s·B·A, all in float64 (W given as [out][in]). */
function naiveDora(
  W: number[][],
  A: Float32Array,
  B: Float32Array,
  m: Float32Array,
  r: number,
  s: number,
): number[][] {
  const nIn = W[0]!.length;
  return W.map((row, o) => {
    const v = row.map((w, j) => {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += B[o * r + k]! * A[k * nIn + j]!;
      return w + s * acc;
    });
    const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    return v.map((x) => (m[o]! / norm) * x);
  });
}

/** A one-module DoRA adapter (shapes of a linear layer or an embedding) with the given tensors. */
function doraAdapter(
  kind: "linear" | "embedding",
  A: Float32Array,
  B: Float32Array,
  m: Float32Array,
  shapes: { r: number; nIn: number; nOut: number },
): Adapter {
  const config = makeLoraConfig({ r: shapes.r, lora_alpha: 3, use_dora: true, target_modules: ["x"] });
  const keys = loraKeys("x", kind);
  return {
    config,
    tensors: new Map([
      [keys.A, { shape: [shapes.r, shapes.nIn], data: A, dtype: "float32" as const }],
      [keys.B, { shape: [shapes.nOut, shapes.r], data: B, dtype: "float32" as const }],
      [magnitudeKey("x"), { shape: [shapes.nOut], data: m, dtype: "float32" as const }],
    ]),
  };
}

test("mergeModule on a DoRA adapter: (m / n) ⊙ (W + s·B·A) per output, in the linear, Conv1D and embedding layouts", () => {
  const [r, nIn, nOut] = [2, 6, 4];
  const s = 3 / 2; // lora_alpha 3, r 2
  const A = randomArray(r * nIn, 1, 0.5);
  const B = randomArray(nOut * r, 2, 0.5);
  const m = randomArray(nOut, 3).map((x) => 1 + Math.abs(x));
  const Wrows = Array.from({ length: nOut }, (_, o) => Array.from(randomArray(nIn, 10 + o)));
  const want = naiveDora(Wrows, A, B, m, r, s);
  const shapes = { r, nIn, nOut };

  // Linear: W [out, in].
  const lin = mergeModule(doraAdapter("linear", A, B, m, shapes), "x", Float32Array.from(Wrows.flat()));
  assert.ok(maxAbsDiff(lin!, want.flat()) < 1e-5);
  // The factor matters: LoRA's W + s·B·A is far from it.
  const loraOnly = mergeModule(
    {
      ...doraAdapter("linear", A, B, m, shapes),
      config: makeLoraConfig({ r, lora_alpha: 3, target_modules: ["x"] }),
    },
    "x",
    Float32Array.from(Wrows.flat()),
  )!;
  assert.ok(maxAbsDiff(lin!, loraOnly) > 0.1);
  // No W-independent delta exists for DoRA: asking for one is an error, not LoRA's s·B·A.
  assert.throws(() => adapterDelta(doraAdapter("linear", A, B, m, shapes), "x"), /DoRA adapter has no delta/);
  // Conv1D: W stored [in, out]; the factor scales columns.
  const conv = new Float32Array(nIn * nOut);
  for (let o = 0; o < nOut; o++) for (let j = 0; j < nIn; j++) conv[j * nOut + o] = Wrows[o]![j]!;
  const gotConv = mergeModule(doraAdapter("linear", A, B, m, shapes), "x", conv, { fanInFanOut: true })!;
  for (let o = 0; o < nOut; o++)
    for (let j = 0; j < nIn; j++) assert.ok(Math.abs(gotConv[j * nOut + o]! - want[o]![j]!) < 1e-5);
  // Embedding: E [vocab, dim] with lora_embedding_A [r, vocab], B [dim, r]: the norm is per dim over
  // the vocabulary, so E' = (E + s·(B·A)ᵀ) scaled per column. Here vocab = nIn, dim = nOut.
  const emb = new Float32Array(nIn * nOut);
  for (let d = 0; d < nOut; d++) for (let v = 0; v < nIn; v++) emb[v * nOut + d] = Wrows[d]![v]!;
  const gotEmb = mergeModule(doraAdapter("embedding", A, B, m, shapes), "x", emb)!;
  for (let d = 0; d < nOut; d++)
    for (let v = 0; v < nIn; v++) assert.ok(Math.abs(gotEmb[v * nOut + d]! - want[d]![v]!) < 1e-5);
});

test("`lora-ts merge` of a DoRA adapter writes (m / n) ⊙ (W + s·B·A) and leaves the base's files alone", () => {
  const model = tinyModel("gpt2", 4);
  const adapterDir = join(tempDir("dora-merge"), "adapter");
  writeRandomAdapter(model, adapterDir, {
    seed: 5,
    r: 2,
    lora_alpha: 4,
    use_dora: true,
    target_modules: ["c_attn", "wte"],
  });
  const before = fileHashes(model);
  const out = join(tempDir("dora-merge"), "merged");
  const r = runCli(["merge", "--model", model, "--adapter", adapterDir, "--out", out, "--dtype", "f32"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fileHashes(model), before);
  const adapter = loadAdapter(adapterDir);
  const base = openModelDir(model);
  const merged = openModelDir(out);
  try {
    for (const [path, fanInFanOut] of [
      ["transformer.h.0.attn.c_attn", true],
      ["transformer.wte", false],
    ] as const) {
      const W = base.weights.readFloat32(`${path}.weight`);
      const want = mergeModule(adapter, path, W.slice(), { fanInFanOut })!;
      const got = merged.weights.readFloat32(`${path}.weight`);
      assert.ok(maxAbsDiff(got, want) === 0, path);
      // The magnitude moved away from ‖W‖, so the merged weight differs from W by much more than B·A.
      assert.ok(maxAbsDiff(got, W) > 1e-2, `${path}: DoRA changed nothing`);
    }
  } finally {
    base.weights.close();
    merged.weights.close();
  }
});

test("combine, the subspace and amplification analyses and `export gguf-adapter` refuse a DoRA adapter in one line", () => {
  const model = tinyModel("llama", 6);
  const dir = tempDir("dora-refuse");
  const dora = join(dir, "dora");
  const lora = join(dir, "lora");
  writeRandomAdapter(model, dora, { seed: 1, r: 2, use_dora: true, target_modules: ["q_proj"] });
  writeRandomAdapter(model, lora, { seed: 2, r: 2, target_modules: ["q_proj"] });
  const [d, l] = [loadAdapter(dora), loadAdapter(lora)];
  assert.throws(() => combineAdapters([l, d], [0.5, 0.5], "cat"), /is a DoRA adapter .*cannot be combined/);
  assert.throws(() => compareAdapterSubspaces(d, l), /DoRA adapter .*subspace analysis/);
  const hf = openModelDir(model);
  try {
    assert.throws(() => adapterAmplification(hf, d), /DoRA adapter .*amplification analysis/);
  } finally {
    hf.weights.close();
  }
  for (const args of [
    ["combine", "--adapter", lora, "--adapter", dora, "--weights", "1,1", "--out", join(dir, "c")],
    ["export", "gguf-adapter", "--model", model, "--adapter", dora, "--out", join(dir, "a.gguf")],
  ]) {
    const r = runCli(args);
    assert.equal(r.code, 1, args[0]);
    assert.match(r.stderr, /^error: [^\n]*DoRA[^\n]*\n$/, args[0]);
  }
});

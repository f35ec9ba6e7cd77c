import assert from "node:assert/strict";
import { test } from "node:test";
import { type Adapter, createAdapter, validateAdapter } from "../../src/lora/adapter.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { adapterDelta, combineAdapters, deltaWeight, mergeInto, unmerge } from "../../src/lora/merge.js";
import { selectTargets } from "../../src/lora/targets.js";
import { gpt2Modules, llamaModules, maxAbsDiff, randomArray } from "./fixtures.js";

/** Naive ΔW: s·B·A for [m, n], in double precision. */
function naiveBA(A: Float32Array, B: Float32Array, r: number, n: number, m: number, s: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < m; i++) {
    out.push([]);
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += B[i * r + k]! * A[k * n + j]!;
      out[i]!.push(s * acc);
    }
  }
  return out;
}

test("deltaWeight for linear [out, in], Conv1D [in, out] and embedding [vocab, dim] layouts", () => {
  const r = 3;
  const fin = 7;
  const fout = 5;
  const A = randomArray(r * fin, 1);
  const B = randomArray(fout * r, 2);
  const s = 1.75;
  const ref = naiveBA(A, B, r, fin, fout, s); // [out][in]
  const lin = deltaWeight({ shape: [r, fin], data: A }, { shape: [fout, r], data: B }, s);
  const conv = deltaWeight({ shape: [r, fin], data: A }, { shape: [fout, r], data: B }, s, {
    fanInFanOut: true,
  });
  for (let o = 0; o < fout; o++) {
    for (let i = 0; i < fin; i++) {
      assert.ok(Math.abs(lin[o * fin + i]! - ref[o]![i]!) < 1e-6);
      assert.ok(Math.abs(conv[i * fout + o]! - ref[o]![i]!) < 1e-6);
    }
  }
  // Embedding: A [r, vocab], B [dim, r]; the table is [vocab, dim] and ΔW[v][d] = s·(B·A)[d][v].
  const vocab = 11;
  const dim = 4;
  const eA = randomArray(r * vocab, 3);
  const eB = randomArray(dim * r, 4);
  const eRef = naiveBA(eA, eB, r, vocab, dim, s); // [dim][vocab]
  const emb = deltaWeight({ shape: [r, vocab], data: eA }, { shape: [dim, r], data: eB }, s, {
    embedding: true,
  });
  for (let v = 0; v < vocab; v++)
    for (let d = 0; d < dim; d++) assert.ok(Math.abs(emb[v * dim + d]! - eRef[d]![v]!) < 1e-6);
  assert.throws(
    () => deltaWeight({ shape: [3, 7], data: A }, { shape: [5, 2], data: B.subarray(0, 10) }, 1),
    /do not chain/,
  );
});

test("merge then unmerge restores W within 1e-6", () => {
  // Scales of a trained model: weights ~0.05, A ~ kaiming (1/√in), B ~ 0.02. The round trip is exact
  // up to float32 rounding of W + ΔW, i.e. half an ulp of the merged value.
  const W = randomArray(64 * 172, 9, 0.05);
  const orig = Float32Array.from(W);
  const delta = deltaWeight(
    { shape: [8, 64], data: randomArray(8 * 64, 10, 1 / 8) },
    { shape: [172, 8], data: randomArray(172 * 8, 11, 0.02) },
    2,
  );
  mergeInto(W, delta);
  assert.ok(maxAbsDiff(W, orig) > 0.01, "merge changed W");
  unmerge(W, delta);
  assert.ok(maxAbsDiff(W, orig) <= 1e-6, `max diff ${maxAbsDiff(W, orig)}`);
});

const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** An adapter with random non-zero A and B on the given targets. */
function randomAdapter(
  seed: number,
  fields: Parameters<typeof makeLoraConfig>[0],
  modules = llamaModules(2),
): Adapter {
  const cfg = makeLoraConfig({ init_lora_weights: false, ...fields });
  return createAdapter(cfg, selectTargets(cfg, modules), { seed }).adapter;
}

test("combine linear with weights [1, 0] reproduces the first adapter's deltas", () => {
  const modules = llamaModules(2);
  const t = ["q_proj", "v_proj", "embed_tokens"];
  const a1 = randomAdapter(1, { r: 4, lora_alpha: 8, target_modules: t });
  const a2 = randomAdapter(2, { r: 4, lora_alpha: 3, target_modules: t });
  const c = combineAdapters([a1, a2], [1, 0], "linear");
  assert.equal(c.config.r, 4);
  assert.equal(c.config.lora_alpha, 4);
  validateAdapter(c, modules);
  for (const p of [
    "model.layers.0.self_attn.q_proj",
    "model.layers.1.self_attn.v_proj",
    "model.embed_tokens",
  ]) {
    const want = adapterDelta(a1, p)!;
    const got = adapterDelta(c, p)!;
    // Equal up to float32 rounding of √s·A and √s·B: relative 1e-6 of the largest entry.
    assert.ok(maxAbsDiff(got, want) <= 1e-6 * maxAbs(want), `${p}: ${maxAbsDiff(got, want)}`);
  }
  // Linear mixing with two non-zero weights has cross terms: A' = Σ√(wᵢsᵢ)Aᵢ, B' = Σ√(wᵢsᵢ)Bᵢ.
  const mix = combineAdapters([a1, a2], [0.5, 2], "linear");
  const path = "model.layers.0.self_attn.q_proj";
  const k = (x: Adapter, part: "A" | "B") =>
    x.tensors.get(`base_model.model.${path}.lora_${part}.weight`)!.data;
  const c1 = Math.sqrt(0.5 * 2);
  const c2 = Math.sqrt(2 * 0.75);
  const wantA = k(a1, "A").map((v, i) => c1 * v + c2 * k(a2, "A")[i]!);
  assert.ok(maxAbsDiff(k(mix, "A"), wantA) <= 1e-6 * maxAbs(wantA));
  // Negative weights flip the sign on A only.
  const neg = combineAdapters([a1], [-1], "linear");
  const d1 = adapterDelta(a1, path)!;
  assert.ok(
    maxAbsDiff(
      adapterDelta(neg, path)!,
      d1.map((v) => -v),
    ) <=
      1e-6 * maxAbs(d1),
  );
  // Unequal ranks are refused for linear.
  const a3 = randomAdapter(3, { r: 2, target_modules: t });
  assert.throws(
    () => combineAdapters([a1, a3], [1, 1], "linear"),
    /all adapters must have the same r, got 4, 2/,
  );
});

test("combine cat: the delta is the weighted sum of the deltas, rank is the sum", () => {
  const modules = gpt2Modules(2);
  const a1 = randomAdapter(1, { r: 4, lora_alpha: 8, target_modules: ["c_attn", "wte"] }, modules);
  const a2 = randomAdapter(
    2,
    { r: 2, lora_alpha: 2, use_rslora: true, target_modules: ["c_attn", "mlp.c_proj"] },
    modules,
  );
  const w = [0.7, -1.3];
  const c = combineAdapters([a1, a2], w, "cat");
  assert.equal(c.config.r, 6);
  assert.deepEqual(c.config.target_modules, ["c_attn", "wte", "mlp.c_proj"]);
  validateAdapter(c, modules);
  for (const m of modules.filter((x) => x.kind === "linear" || x.path === "transformer.wte")) {
    const opts = { fanInFanOut: m.fanInFanOut };
    const d1 = adapterDelta(a1, m.path, opts);
    const d2 = adapterDelta(a2, m.path, opts);
    const got = adapterDelta(c, m.path, opts);
    if (!d1 && !d2) {
      assert.equal(got, undefined);
      continue;
    }
    const n = (d1 ?? d2)!.length;
    const want = new Float32Array(n).map((_, i) => w[0]! * (d1?.[i] ?? 0) + w[1]! * (d2?.[i] ?? 0));
    assert.ok(maxAbsDiff(got!, want) <= 1e-6 * maxAbs(want), `${m.path}: ${maxAbsDiff(got!, want)}`);
  }
});

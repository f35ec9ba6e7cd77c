/**
 * The amplification analysis (LoRA paper §7.3): known answers on hand-made W and ΔW, the low-rank SVD
 * against the full SVD of deltaWeight, the random-direction baseline against its derived mean, and
 * GPT-2's Conv1D layout on a real model folder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { loraKeys } from "../../src/lora/adapter.js";
import { loadAdapter } from "../../src/lora/adapter-files.js";
import {
  adapterAmplification,
  amplification,
  lowRankDeltaSvd,
  projectedNorm,
  randomOrthonormalRows,
} from "../../src/lora/amplification.js";
import { deltaWeight } from "../../src/lora/layer.js";
import { orthonormalizeRows } from "../../src/lora/subspace.js";
import { topSvd } from "../../src/lora/svd.js";
import { openModelDir } from "../../src/models/open-model.js";
import { Rng } from "../../src/util/rng.js";
import { writeRandomAdapter } from "../helpers/random-adapter.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const close = (a: number, b: number, rel: number) =>
  Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

/** W = diag(w) [out, in] (out ≠ in allowed). */
function diagonal(w: number[], out: number, fin: number): Float64Array {
  const W = new Float64Array(out * fin);
  w.forEach((v, i) => {
    W[i * fin + i] = v;
  });
  return W;
}

/** A [r, in] and B [out, r] with B·A = Σ_t c_t·e_{axis_t}·e_{axis_t}ᵀ, mixed by an orthogonal Q (B·Qᵀ·Q·A). */
function alongAxes(axes: number[], c: number[], out: number, fin: number, seed: number) {
  const r = axes.length;
  const A0 = new Float64Array(r * fin);
  const B0 = new Float64Array(out * r);
  axes.forEach((ax, t) => {
    A0[t * fin + ax] = 1;
    B0[ax * r + t] = c[t]!;
  });
  const Q = new Rng(seed).fillNormal(new Float64Array(r * r)) as Float64Array;
  orthonormalizeRows(Q, r, r);
  const A = new Float64Array(r * fin); // Q·A0
  const B = new Float64Array(out * r); // B0·Qᵀ
  for (let a = 0; a < r; a++)
    for (let b = 0; b < r; b++)
      for (let i = 0; i < fin; i++) A[a * fin + i]! += Q[a * r + b]! * A0[b * fin + i]!;
  for (let o = 0; o < out; o++)
    for (let a = 0; a < r; a++) for (let b = 0; b < r; b++) B[o * r + a]! += B0[o * r + b]! * Q[a * r + b]!;
  return { A, B, r };
}

test("known answer: ΔW along two axes of a diagonal W", () => {
  const out = 7;
  const fin = 9;
  const w = [10, 8, 5, 3, 1, 0.5, 0.1];
  const W = diagonal(w, out, fin);
  const s = 2;
  const { A, B, r } = alongAxes([4, 6], [3, 1.5], out, fin, 1);
  const res = amplification(W, A, B, { r, in: fin, out, scaling: s }, { wTop: true });
  // ΔW = s·(3·e₄e₄ᵀ + 1.5·e₆e₆ᵀ): U = V = [e₄, e₆], UᵀWV = diag(w₄, w₆).
  const delta = s * Math.hypot(3, 1.5);
  const proj = Math.hypot(w[4]!, w[6]!);
  assert.equal(res.rank, 2);
  assert.ok(close(res.deltaNorm, delta, 1e-12), `‖ΔW‖ ${res.deltaNorm} vs ${delta}`);
  assert.ok(close(res.projNorm!, proj, 1e-10), `‖UᵀWV‖ ${res.projNorm} vs ${proj}`);
  assert.ok(close(res.factor!, delta / proj, 1e-10));
  assert.ok(close(res.wNorm, Math.hypot(...w), 1e-12));
  assert.ok(close(res.wTopNorm!, Math.hypot(10, 8), 1e-8), "W's own top-2 directions");
  // Along W's top axes instead, the factor is small and the projection far above random.
  const top = alongAxes([0, 1], [3, 1.5], out, fin, 2);
  const res2 = amplification(W, top.A, top.B, { r: 2, in: fin, out, scaling: s });
  assert.ok(close(res2.projNorm!, Math.hypot(10, 8), 1e-10));
  assert.ok(res2.projNorm! > 3 * res2.randomExpected);
  assert.ok(res2.factor! < res.factor! / 10);
});

test("ΔW between different input and output axes of a diagonal W: W has nothing there, no factor", () => {
  const out = 4;
  const fin = 4;
  const W = diagonal([4, 3, 2, 1], out, fin);
  const A = new Float64Array([0, 0, 1, 0]); // r = 1: V = e₂
  const B = new Float64Array([0, 2, 0, 0]); // U = e₁
  const res = amplification(W, A, B, { r: 1, in: fin, out, scaling: 1 });
  assert.ok(Math.abs(res.projNorm!) < 1e-12);
  assert.equal(res.factor, null);
  const zero = amplification(W, A, new Float64Array(4), { r: 1, in: fin, out, scaling: 1 });
  assert.equal(zero.rank, 0);
  assert.equal(zero.deltaNorm, 0);
  assert.equal(zero.factor, null);
  assert.match(zero.note ?? "", /zero/);
});

test("the low-rank SVD of s·B·A agrees with topSvd of the full deltaWeight", () => {
  const r = 5;
  const fin = 40;
  const out = 30;
  const rng = new Rng(3);
  const A = rng.fillNormal(new Float32Array(r * fin)) as Float32Array;
  const B = rng.fillNormal(new Float32Array(out * r)) as Float32Array;
  const W = rng.fillNormal(new Float64Array(out * fin)) as Float64Array;
  const s = 0.75;
  const low = lowRankDeltaSvd(A, B, r, fin, out, s);
  const full = topSvd(
    deltaWeight({ shape: [r, fin], data: A }, { shape: [out, r], data: B }, s),
    out,
    fin,
    r,
  );
  assert.equal(low.k, r);
  for (let t = 0; t < r; t++) assert.ok(close(low.S[t]!, full.S[t]!, 1e-5), `σ${t}`);
  const fullU = new Float64Array(r * out);
  for (let t = 0; t < r; t++) for (let o = 0; o < out; o++) fullU[t * out + o] = full.U[o * r + t]!;
  const a = projectedNorm(W, out, fin, low.Urows, r, low.Vrows, r);
  const b = projectedNorm(W, out, fin, fullU, r, full.Vt, r);
  assert.ok(close(a, b, 1e-5), `${a} vs ${b}`);
  // U and V are orthonormal.
  for (let p = 0; p < r; p++) {
    for (let q = 0; q < r; q++) {
      let u = 0;
      let v = 0;
      for (let o = 0; o < out; o++) u += low.Urows[p * out + o]! * low.Urows[q * out + o]!;
      for (let i = 0; i < fin; i++) v += low.Vrows[p * fin + i]! * low.Vrows[q * fin + i]!;
      assert.ok(Math.abs(u - (p === q ? 1 : 0)) < 1e-10 && Math.abs(v - (p === q ? 1 : 0)) < 1e-10);
    }
  }
});

test("random directions: E‖UᵀWV‖²_F = ‖W‖²_F·r²/(out·in), checked on W = c·I with the exact variance", () => {
  // With W = c·I (n×n), ‖UᵀWV‖²_F = c²·X, X = ‖UᵀV‖²_F for two independent uniformly random
  // r-dimensional subspaces. As in subspace.test.ts: E X = r²/n and Var X = r·v₁·(n−r)/(n−1) with
  // v₁ = 2r(n−r)/(n²(n+2)). The mean of N draws is allowed 5 standard deviations.
  const n = 32;
  const r = 4;
  const c = 3;
  const W = diagonal(new Array(n).fill(c), n, n);
  const N = 100;
  const rng = new Rng(17);
  let sum = 0;
  const { A, B } = alongAxes([0, 1, 2, 3], [1, 2, 3, 4], n, n, 5);
  let expected = 0;
  for (let k = 0; k < N; k++) {
    const res = amplification(W, A, B, { r, in: n, out: n, scaling: 1 }, { rng });
    sum += res.randomProjNorm ** 2;
    expected = res.randomExpected;
  }
  const wNorm2 = c * c * n;
  assert.ok(
    close(expected, Math.sqrt((wNorm2 * r * r) / (n * n)), 1e-12),
    "randomExpected = ‖W‖_F·r/√(out·in)",
  );
  const v1 = (2 * r * (n - r)) / (n * n * (n + 2));
  const sd = (c * c * Math.sqrt((r * v1 * (n - r)) / (n - 1))) / Math.sqrt(N);
  const mean = sum / N;
  assert.ok(Math.abs(mean - expected ** 2) <= 5 * sd, `mean ${mean} vs ${expected ** 2} ± ${5 * sd}`);
  // The brief's guess ‖W‖_F·√(r/(out·in)) is another size: the check tells them apart.
  assert.ok(Math.abs(mean - (wNorm2 * r) / (n * n)) > 5 * sd);
  // The directions are orthonormal.
  const U = randomOrthonormalRows(10, 3, new Rng(1));
  for (let p = 0; p < 3; p++) {
    let s = 0;
    for (let i = 0; i < 10; i++) s += U[p * 10 + i]! ** 2;
    assert.ok(Math.abs(s - 1) < 1e-12);
  }
});

test("GPT-2 Conv1D ([in, out] storage) and an embedding are read as [out, in]; the model folder is only read", () => {
  const model = tinyModel("gpt2", 21);
  const dir = join(tempDir(), "adapter");
  writeRandomAdapter(model, dir, { seed: 4, r: 3, lora_alpha: 6, target_modules: ["c_proj", "wte"] });
  const m = openModelDir(model);
  try {
    const adapter = loadAdapter(dir);
    const rs = adapterAmplification(m, adapter, { seed: 1 });
    const paths = rs.map((x) => x.path);
    assert.ok(paths.includes("transformer.h.0.attn.c_proj") && paths.includes("transformer.h.0.mlp.c_proj"));
    assert.ok(paths.includes("transformer.wte"), paths.join(", "));
    for (const res of rs) {
      const keys = loraKeys(res.path, res.kind);
      const A = adapter.tensors.get(keys.A)!;
      const B = adapter.tensors.get(keys.B)!;
      // Reference: the full s·B·A [out, in] (deltaWeight without a transpose) and W transposed by hand.
      const stored = m.weights.readFloat32(`${res.path}.weight`); // [in, out] for Conv1D and wte
      const Wn = new Float64Array(res.out * res.in);
      for (let i = 0; i < res.in; i++)
        for (let o = 0; o < res.out; o++) Wn[o * res.in + i] = stored[i * res.out + o]!;
      assert.ok(close(res.scaling, 2, 1e-12), "s = alpha / r");
      const full = topSvd(deltaWeight(A, B, res.scaling), res.out, res.in, 3);
      const U = new Float64Array(3 * res.out);
      for (let t = 0; t < 3; t++) for (let o = 0; o < res.out; o++) U[t * res.out + o] = full.U[o * 3 + t]!;
      const want = projectedNorm(Wn, res.out, res.in, U, 3, full.Vt, 3);
      assert.ok(close(res.projNorm!, want, 1e-4), `${res.path}: ${res.projNorm} vs ${want}`);
      assert.ok(close(res.deltaNorm, Math.hypot(...full.S), 1e-5));
      if (res.in === res.out) {
        // The stored layout taken as [out, in] gives another number: the check can fail.
        const wrong = projectedNorm(stored, res.out, res.in, U, 3, full.Vt, 3);
        assert.ok(!close(wrong, want, 1e-2), `${res.path}: the untransposed weight gives the same number`);
      }
    }
    const only = adapterAmplification(m, adapter, { seed: 1, module: "attn.c_proj" });
    assert.deepEqual(
      only.map((x) => x.path),
      ["transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj"],
      "a filter matches whole trailing components of the path",
    );
    const onlyC = adapterAmplification(m, adapter, { seed: 1, module: "c_proj" });
    assert.equal(onlyC.length, rs.length - 1);
    // Per-module seeding: a module's random baseline does not depend on the filter.
    const a = rs.find((x) => x.path === onlyC[0]!.path)!;
    assert.equal(onlyC[0]!.randomProjNorm, a.randomProjNorm);
  } finally {
    m.weights.close();
  }
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { createAdapter } from "../../src/lora/adapter.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { initLoraPair } from "../../src/lora/init.js";
import { deltaWeight } from "../../src/lora/merge.js";
import { topSvd } from "../../src/lora/svd.js";
import { type SelectedModule, selectTargets } from "../../src/lora/targets.js";
import { Rng } from "../../src/util/rng.js";
import { llamaModules, maxAbsDiff, randomArray } from "./fixtures.js";

const mod = (fields: Partial<SelectedModule> = {}): SelectedModule => ({
  path: "model.layers.0.mlp.down_proj",
  kind: "linear",
  r: 8,
  alpha: 16,
  scaling: 2,
  fanInFanOut: false,
  in: 256,
  out: 64,
  ...fields,
});

function stats(a: Float32Array): { mean: number; std: number; min: number; max: number } {
  let s = 0;
  let s2 = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of a) {
    s += v;
    s2 += v * v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(s2 / a.length - mean * mean), min, max };
}

test("Rng: reproducible, distinct seeds differ, state save/restore resumes the stream", () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const xs = Array.from({ length: 5 }, () => a.next());
  assert.deepEqual(
    xs,
    Array.from({ length: 5 }, () => b.next()),
  );
  assert.notDeepEqual(
    xs,
    Array.from({ length: 5 }, () => c.next()),
  );
  const st = a.state;
  const next = [a.normal(), a.uniform(-2, 3), a.next()];
  const d = new Rng(0);
  d.state = st;
  assert.deepEqual([d.normal(), d.uniform(-2, 3), d.next()], next);
  assert.throws(() => {
    d.state = [0, 0, 0, 0];
  }, /not all zero/);
  const n = new Rng(7).fillNormal(new Float64Array(20000));
  const s = stats(Float32Array.from(n));
  assert.ok(Math.abs(s.mean) < 0.03 && Math.abs(s.std - 1) < 0.03, JSON.stringify(s));
});

test("default init: A ~ kaiming_uniform(a=√5) = U(±1/√in), B = 0; seeded per module", () => {
  const { A, B } = initLoraPair(mod(), true, 1);
  const bound = 1 / Math.sqrt(256);
  const s = stats(A);
  assert.ok(s.max < bound && s.min >= -bound, "within the kaiming bound");
  assert.ok(s.max > 0.95 * bound && s.min < -0.95 * bound, "fills the range");
  assert.ok(Math.abs(s.std - bound / Math.sqrt(3)) < 0.05 * bound, `std ${s.std}`);
  assert.ok(B.every((v) => v === 0));
  assert.deepEqual(initLoraPair(mod(), true, 1).A, A, "same seed, same values");
  assert.notDeepEqual(initLoraPair(mod(), true, 2).A, A, "another seed, other values");
  assert.notDeepEqual(
    initLoraPair(mod({ path: "model.layers.1.mlp.down_proj" }), true, 1).A,
    A,
    "another module, other values",
  );
});

test("gaussian: A ~ N(0, 1/r²) (PEFT std = 1/r), B = 0; false: B random too", () => {
  const { A, B } = initLoraPair(mod({ r: 4 }), "gaussian", 3);
  const s = stats(A);
  assert.ok(Math.abs(s.std - 0.25) < 0.02 && Math.abs(s.mean) < 0.02, JSON.stringify(s));
  assert.ok(B.every((v) => v === 0));
  const f = initLoraPair(mod({ r: 4 }), false, 3);
  assert.ok(stats(f.B).max <= 0.5 && stats(f.B).std > 0.2, "B ~ U(±1/√r)");
  assert.ok(stats(f.A).max <= 1 / 16);
});

test("embeddings: lora_embedding_A = 0, lora_embedding_B ~ N(0, 1)", () => {
  const e = mod({ path: "model.embed_tokens", kind: "embedding", in: 512, out: 64 });
  for (const init of [true, "gaussian", "pissa"] as const) {
    const { A, B } = initLoraPair(e, init, 5);
    assert.ok(A.every((v) => v === 0));
    const s = stats(B);
    assert.ok(Math.abs(s.std - 1) < 0.1 && Math.abs(s.mean) < 0.1, JSON.stringify(s));
  }
});

test("PiSSA: s·B·A + residual == W, B·A is the top-r SVD part, Conv1D layout honoured", () => {
  for (const fanInFanOut of [false, true]) {
    const m = mod({ r: 4, scaling: 2, in: 48, out: 32, fanInFanOut });
    const W = randomArray(48 * 32, 8);
    const { A, B, residual } = initLoraPair(m, "pissa", 1, W);
    const d = deltaWeight({ shape: [4, 48], data: A }, { shape: [32, 4], data: B }, 2, { fanInFanOut });
    const back = residual!.map((v, i) => v + d[i]!);
    assert.ok(maxAbsDiff(back, W) < 1e-5, `${maxAbsDiff(back, W)}`);
    // The adapter holds the top-4 singular part: ‖residual‖² = ‖W‖² − Σ σᵢ² (Eckart–Young).
    const Wol = fanInFanOut ? transpose(W, 48, 32) : W; // [out, in]
    const { S } = topSvd(Wol, 32, 48, 4);
    const sq = (a: ArrayLike<number>) => Array.from(a).reduce((x, v) => x + v * v, 0);
    const expect = sq(W) - sq(S);
    assert.ok(Math.abs(sq(residual!) - expect) < 1e-3 * sq(W), `${sq(residual!)} vs ${expect}`);
    // A = diag(√(S/s))·Vᵀ: row norms of A are √(σᵢ/s).
    for (let c = 0; c < 4; c++) {
      const rowNorm = Math.sqrt(sq(A.subarray(c * 48, (c + 1) * 48)));
      assert.ok(Math.abs(rowNorm - Math.sqrt(S[c]! / 2)) < 1e-4);
    }
  }
  // pissa_niter_N (randomized) also reconstructs exactly and is seeded.
  const m = mod({ r: 4, in: 48, out: 32 });
  const W = randomArray(48 * 32, 9);
  const p1 = initLoraPair(m, "pissa_niter_4", 1, W);
  const d = deltaWeight({ shape: [4, 48], data: p1.A }, { shape: [32, 4], data: p1.B }, 2);
  assert.ok(
    maxAbsDiff(
      p1.residual!.map((v, i) => v + d[i]!),
      W,
    ) < 1e-5,
  );
  assert.deepEqual(initLoraPair(m, "pissa_niter_4", 1, W).A, p1.A);
});

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j]!;
  return out;
}

// No wall-clock assertion here: a time limit flakes on a busy 2-core CI host and says nothing about
// correctness. The speed of topSvd (576×1536, top-8, the SmolLM down_proj shape) is measured by
// bench/svd.ts (`npm run build && node dist/bench/svd.js`).
test("topSvd recovers known singular values", () => {
  // W = U·diag(S)·Vᵀ with orthonormal U [40, 6], V [70, 6].
  const orth = (rows: number, k: number, seed: number): Float64Array => {
    const q = Float64Array.from(randomArray(rows * k, seed));
    for (let c = 0; c < k; c++) {
      for (let p = 0; p < c; p++) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += q[i * k + c]! * q[i * k + p]!;
        for (let i = 0; i < rows; i++) q[i * k + c]! -= d * q[i * k + p]!;
      }
      let nn = 0;
      for (let i = 0; i < rows; i++) nn += q[i * k + c]! ** 2;
      for (let i = 0; i < rows; i++) q[i * k + c]! /= Math.sqrt(nn);
    }
    return q;
  };
  const S = [9, 7, 5, 5, 2, 0.5];
  const U = orth(40, 6, 1);
  const V = orth(70, 6, 2);
  const W = new Float64Array(40 * 70);
  for (let i = 0; i < 40; i++)
    for (let j = 0; j < 70; j++)
      for (let c = 0; c < 6; c++) W[i * 70 + j]! += U[i * 6 + c]! * S[c]! * V[j * 6 + c]!;
  for (const [m, rows, cols] of [
    [W, 40, 70],
    [Float64Array.from({ length: W.length }, (_, t) => W[(t % 40) * 70 + Math.floor(t / 40)]!), 70, 40],
  ] as const) {
    const svd = topSvd(m, rows, cols, 5);
    assert.ok(maxAbsDiff(svd.S, S.slice(0, 5)) < 1e-9, `${Array.from(svd.S)}`);
  }
});

test("createAdapter: reproducible from the seed; PiSSA residuals per module", () => {
  const cfg = makeLoraConfig({ target_modules: ["q_proj", "v_proj"], init_lora_weights: "gaussian" });
  const sel = selectTargets(cfg, llamaModules(2));
  const a = createAdapter(cfg, sel, { seed: 11 }).adapter;
  const b = createAdapter(cfg, sel, { seed: 11 }).adapter;
  const c = createAdapter(cfg, sel, { seed: 12 }).adapter;
  const k = "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight";
  assert.deepEqual(a.tensors.get(k)!.data, b.tensors.get(k)!.data);
  assert.notDeepEqual(a.tensors.get(k)!.data, c.tensors.get(k)!.data);
  const pcfg = makeLoraConfig({ target_modules: ["q_proj"], init_lora_weights: "pissa", r: 2 });
  const psel = selectTargets(pcfg, llamaModules(2));
  const { residuals } = createAdapter(pcfg, psel, {
    seed: 1,
    baseWeight: (p) => randomArray(64 * 64, p.length),
  });
  assert.deepEqual(
    [...residuals.keys()],
    ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"],
  );
  assert.throws(
    () => createAdapter(pcfg, psel, { seed: 1 }),
    /q_proj needs its base weight \(DoRA.s magnitude or PiSSA\)/,
  );
});

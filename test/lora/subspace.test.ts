/**
 * φ(i, j) = ‖U_iᵀU_j‖²_F / min(i, j) (LoRA paper §7.2): its exact values on hand-made subspaces,
 * its invariances, and its chance level E[φ(i, j)] = max(i, j)/d for independent random A matrices,
 * checked against a tolerance derived from the exact variance (see the test's comment).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Adapter } from "../../src/lora/adapter.js";
import { loraKeys } from "../../src/lora/adapter.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import {
  chancePhi,
  compareAdapterSubspaces,
  moduleMatches,
  orthonormalizeRows,
  phiMatrix,
  principalCosines,
  rightSingularBasis,
} from "../../src/lora/subspace.js";
import { Rng } from "../../src/util/rng.js";

function gaussian(n: number, seed: number): Float64Array {
  return new Rng(seed).fillNormal(new Float64Array(n)) as Float64Array;
}

function maxDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    assert.equal(a[i]!.length, b[i]!.length);
    for (let j = 0; j < a[i]!.length; j++) m = Math.max(m, Math.abs(a[i]![j]! - b[i]![j]!));
  }
  return m;
}

test("φ on hand-made subspaces: cos²θ of a tilted direction, 0 for orthogonal ones", () => {
  const d = 4;
  const theta = 0.3;
  // A₁'s right singular vectors are e₁ (σ = 2) then e₂ (σ = 1).
  const A1 = new Float64Array([2, 0, 0, 0, 0, 1, 0, 0]);
  // A₂ (r = 1): e₂ tilted by θ towards e₃.
  const A2 = new Float64Array([0, Math.cos(theta), Math.sin(theta), 0]);
  const phi = phiMatrix(A1, 2, A2, 1, d);
  assert.equal(phi.length, 2);
  assert.equal(phi[0]!.length, 1);
  assert.ok(Math.abs(phi[0]![0]!) < 1e-12, `φ(1,1) = ${phi[0]![0]} (e₁ ⟂ A₂)`);
  assert.ok(Math.abs(phi[1]![0]! - Math.cos(theta) ** 2) < 1e-12, `φ(2,1) = ${phi[1]![0]}`);
  // The principal angle between span(e₁, e₂) and A₂'s direction is θ.
  const cos = principalCosines(rightSingularBasis(A1, 2, d), rightSingularBasis(A2, 1, d));
  assert.ok(Math.abs(cos[0]! - Math.cos(theta)) < 1e-12);
});

test("an adapter against itself: φ(i, j) = 1 for every i, j (U_min ⊂ U_max)", () => {
  const r = 8;
  const d = 48;
  const A = gaussian(r * d, 3);
  const phi = phiMatrix(A, r, A, r, d);
  const ones = phi.map((row) => row.map(() => 1));
  assert.ok(maxDiff(phi, ones) < 1e-10, `max |φ − 1| = ${maxDiff(phi, ones)}`);
  // Against a different matrix the diagonal is not 1: the check can fail.
  const other = phiMatrix(A, r, gaussian(r * d, 4), r, d);
  assert.ok(other[0]![0]! < 0.9);
});

test("φ is invariant to scaling A and to A → Q·A (orthogonal Q in the rank space), and φ_AB = φ_BAᵀ", () => {
  const r = 6;
  const d = 20;
  const A = gaussian(r * d, 5);
  const B = gaussian(4 * d, 6);
  const base = phiMatrix(A, r, B, 4, d);
  const scaled = phiMatrix(
    A.map((v) => v * 3.7),
    r,
    B.map((v) => v * 1e-3),
    4,
    d,
  );
  assert.ok(maxDiff(base, scaled) < 1e-10, "scaling");
  const Q = gaussian(r * r, 7);
  assert.equal(orthonormalizeRows(Q, r, r), r);
  const QA = new Float64Array(r * d);
  for (let a = 0; a < r; a++)
    for (let b = 0; b < r; b++) for (let c = 0; c < d; c++) QA[a * d + c]! += Q[a * r + b]! * A[b * d + c]!;
  assert.ok(maxDiff(base, phiMatrix(QA, r, B, 4, d)) < 1e-10, "orthogonal change of basis");
  const swapped = phiMatrix(B, 4, A, r, d);
  const transposed = base[0]!.map((_, j) => base.map((row) => row[j]!));
  assert.ok(maxDiff(swapped, transposed) < 1e-12, "symmetry");
  // A non-orthogonal mix of the rows changes which directions come first: φ is not invariant to it.
  const mixed = A.slice();
  for (let c = 0; c < d; c++) mixed[c]! += 5 * A[d + c]!;
  assert.ok(maxDiff(base, phiMatrix(mixed, r, B, 4, d)) > 1e-3);
  for (const row of base) for (const v of row) assert.ok(v >= 0 && v <= 1 + 1e-12);
});

test("Σ cos² of the principal angles = ‖U_iᵀU_j‖²_F = φ(i, j)·min(i, j)", () => {
  const d = 30;
  const b1 = rightSingularBasis(gaussian(5 * d, 8), 5, d);
  const b2 = rightSingularBasis(gaussian(7 * d, 9), 7, d);
  const phi = phiMatrix(gaussian(5 * d, 8), 5, gaussian(7 * d, 9), 7, d);
  for (const [i, j] of [
    [1, 1],
    [3, 5],
    [5, 7],
    [5, 2],
  ] as const) {
    const cos = principalCosines(b1, b2, i, j);
    assert.equal(cos.length, Math.min(i, j));
    const sum = cos.reduce((s, c) => s + c * c, 0);
    assert.ok(Math.abs(sum - phi[i - 1]![j - 1]! * Math.min(i, j)) < 1e-10, `(${i}, ${j})`);
  }
});

test("independent random A: the mean of φ(i, j) over seeds is max(i, j)/d; dividing by max(i, j) would fail", () => {
  // The top-i right singular vectors of a Gaussian A span a uniformly random i-dimensional subspace
  // (A → A·R for orthogonal R leaves A's law unchanged), independent between the two adapters. Fix
  // U_j; X = ‖U_iᵀU_j‖²_F = Σ_k ‖P_j u_k‖² over U_i's i orthonormal columns u_k. For one uniform unit
  // vector, ‖P_j u‖² ~ Beta(j/2, (d−j)/2): mean j/d, variance v₁ = 2j(d−j)/(d²(d+2)). The d columns
  // of a random orthogonal matrix are exchangeable and their ‖P_j u_k‖² sum to j exactly, so two
  // columns have covariance −v₁/(d−1); hence Var X = i·v₁·(d−i)/(d−1) and
  // Var φ(i, j) = Var X / min(i, j)². The mean of S seeds has standard deviation √(Var φ / S); the
  // test allows 5 of them at every (i, j) (the seeds are fixed, so the outcome is too).
  const d = 64;
  const r1 = 8;
  const r2 = 4;
  const S = 40;
  const sum = Array.from({ length: r1 }, () => new Array<number>(r2).fill(0));
  const sumWrong = Array.from({ length: r1 }, () => new Array<number>(r2).fill(0));
  for (let s = 0; s < S; s++) {
    const phi = phiMatrix(gaussian(r1 * d, 1000 + s), r1, gaussian(r2 * d, 2000 + s), r2, d);
    for (let i = 1; i <= r1; i++) {
      for (let j = 1; j <= r2; j++) {
        const v = phi[i - 1]![j - 1]!;
        sum[i - 1]![j - 1]! += v;
        sumWrong[i - 1]![j - 1]! += (v * Math.min(i, j)) / Math.max(i, j); // ‖U_iᵀU_j‖² / max(i, j)
      }
    }
  }
  let wrongFails = 0;
  for (let i = 1; i <= r1; i++) {
    for (let j = 1; j <= r2; j++) {
      const v1 = (2 * j * (d - j)) / (d * d * (d + 2));
      const varX = (i * v1 * (d - i)) / (d - 1);
      const tol = 5 * Math.sqrt(varX / Math.min(i, j) ** 2 / S);
      const mean = sum[i - 1]![j - 1]! / S;
      const want = chancePhi(i, j, d);
      assert.equal(want, Math.max(i, j) / d);
      assert.ok(Math.abs(mean - want) <= tol, `φ(${i}, ${j}): mean ${mean} vs ${want} ± ${tol}`);
      if (Math.abs(sumWrong[i - 1]![j - 1]! / S - want) > tol) wrongFails++;
    }
  }
  // The wrong normalisation gives min(i, j)/d: off by (max − min)/d, outside the tolerance there.
  assert.ok(wrongFails >= 10, `the divide-by-max formula failed at only ${wrongFails} (i, j)`);
});

function adapterWithA(
  r: number,
  mods: { path: string; kind?: "linear" | "embedding"; A: Float64Array; d: number }[],
): Adapter {
  const tensors = new Map();
  for (const m of mods) {
    const kind = m.kind ?? "linear";
    tensors.set(loraKeys(m.path, kind).A, { shape: [m.A.length / m.d, m.d], data: Float32Array.from(m.A) });
    tensors.set(loraKeys(m.path, kind).B, {
      shape: [3, m.A.length / m.d],
      data: new Float32Array(3 * (m.A.length / m.d)),
    });
  }
  return { config: makeLoraConfig({ r }), tensors };
}

test("compareAdapterSubspaces: modules matched by path, others reported, --module by short name or path", () => {
  const d = 16;
  const q0 = "model.layers.0.self_attn.q_proj";
  const q1 = "model.layers.1.self_attn.q_proj";
  const v0 = "model.layers.0.self_attn.v_proj";
  const k0 = "model.layers.0.self_attn.k_proj";
  const emb = "model.embed_tokens";
  const a = adapterWithA(4, [
    { path: q0, A: gaussian(4 * d, 1), d },
    { path: q1, A: gaussian(4 * d, 2), d },
    { path: v0, A: gaussian(4 * d, 3), d },
    { path: emb, kind: "embedding", A: gaussian(4 * 40, 4), d: 40 },
  ]);
  const b = adapterWithA(2, [
    { path: q0, A: gaussian(2 * d, 5), d },
    { path: q1, A: gaussian(2 * d, 6), d },
    { path: k0, A: gaussian(2 * d, 7), d },
    { path: emb, kind: "embedding", A: gaussian(2 * 40, 8), d: 40 },
  ]);
  const all = compareAdapterSubspaces(a, b);
  assert.deepEqual(all.modules.map((m) => m.path).sort(), [emb, q0, q1].sort());
  assert.deepEqual(all.onlyA, [v0]);
  assert.deepEqual(all.onlyB, [k0]);
  const e = all.modules.find((m) => m.path === emb)!;
  assert.equal(e.kind, "embedding");
  assert.equal(e.d, 40, "an embedding's input space is its vocabulary");
  for (const m of all.modules) {
    assert.equal(m.phi.length, m.r1);
    assert.equal(m.phi[0]!.length, m.r2);
    assert.deepEqual([m.r1, m.r2], [4, 2]);
  }
  assert.deepEqual(
    compareAdapterSubspaces(a, b, { module: "q_proj" }).modules.map((m) => m.path),
    [q0, q1],
  );
  assert.deepEqual(
    compareAdapterSubspaces(a, b, { module: q1 }).modules.map((m) => m.path),
    [q1],
  );
  assert.ok(moduleMatches(q0, "q_proj") && !moduleMatches(q0, "proj") && !moduleMatches(q0, "_proj"));
  // Same path, different input size: reported as skipped, not compared.
  const c = adapterWithA(2, [{ path: q0, A: gaussian(2 * 8, 9), d: 8 }]);
  const mism = compareAdapterSubspaces(a, c);
  assert.equal(mism.modules.length, 0);
  assert.deepEqual(
    mism.skipped.map((s) => s.path),
    [q0],
  );
});

test("a rank-deficient A (zero-padded rows): the grid stops at its numerical rank, with a note", () => {
  const d = 12;
  const A = gaussian(5 * d, 11);
  A.fill(0, 3 * d); // rows 3, 4 zero: rank 3
  const a = adapterWithA(5, [{ path: "m.q_proj", A, d }]);
  const b = adapterWithA(2, [{ path: "m.q_proj", A: gaussian(2 * d, 12), d }]);
  const [m] = compareAdapterSubspaces(a, b).modules;
  assert.equal(m!.r1, 5);
  assert.equal(m!.phi.length, 3);
  assert.match(m!.note ?? "", /numerical rank 3/);
  assert.equal(rightSingularBasis(new Float64Array(2 * d), 2, d).k, 0, "a zero A has no directions");
});

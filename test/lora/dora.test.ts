/**
 * dora.ts: the numbers (weight norm, factor, merged weight, parameter count) against naive loops in
 * every storage layout, and the graph's gradients against finite differences with the norm held
 * constant (computed from the unperturbed A and B, as the detached norm is).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Value } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import * as o from "../../src/graph/ops.js";
import {
  doraEmbedding,
  doraFactor,
  doraGraphFactor,
  doraLinear,
  doraLinearDropout,
  doraMergedWeight,
  doraNorm,
  doraParamCount,
  weightNorm,
} from "../../src/lora/dora.js";
import { Rng } from "../../src/util/rng.js";
import { checkGradient, type InputSpec } from "../graph/gradcheck.js";

const [R, IN, OUT] = [3, 5, 4];
const S = 1.5;

function rand(n: number, seed: number, mean = 0): Float32Array {
  return new Rng(seed).fillNormal(new Float32Array(n), mean, 0.5) as Float32Array;
}

/** W'[o][i] = m_o / ‖V_o‖ · V[o][i] with V = W + s·B·A, indexed by (output, input) via `at`. */
function naive(
  m: Float32Array,
  W: Float32Array,
  A: Float32Array,
  B: Float32Array,
  at: (o: number, i: number) => number,
  nIn: number,
) {
  const V = (o: number, i: number) => {
    let d = 0;
    for (let k = 0; k < R; k++) d += B[o * R + k]! * A[k * nIn + i]!;
    return W[at(o, i)]! + S * d;
  };
  const norms = Array.from({ length: OUT }, (_, o) =>
    Math.sqrt(Array.from({ length: nIn }, (_, i) => V(o, i) ** 2).reduce((a, b) => a + b)),
  );
  const merged = new Float64Array(W.length);
  for (let o = 0; o < OUT; o++)
    for (let i = 0; i < nIn; i++) merged[at(o, i)] = (m[o]! / norms[o]!) * V(o, i);
  return { norms, merged };
}

for (const [name, layout, at] of [
  ["linear [out, in]", {}, (o: number, i: number) => o * IN + i],
  ["Conv1D [in, out]", { fanInFanOut: true }, (o: number, i: number) => i * OUT + o],
  ["embedding [vocab, dim]", { embedding: true }, (o: number, i: number) => i * OUT + o],
] as const) {
  test(`dora.ts numbers, ${name}: the norm, the factor m/n and the merged weight equal naive loops`, () => {
    const W = rand(IN * OUT, 1);
    const A = rand(R * IN, 2);
    const B = rand(OUT * R, 3);
    const m = rand(OUT, 4, 1);
    const want = naive(m, W, A, B, at, IN);
    const mA = { shape: [R, IN], data: A };
    const mB = { shape: [OUT, R], data: B };
    const n = weightNorm(W, mA, mB, S, layout);
    const f = doraFactor(m, W, mA, mB, S, layout);
    const merged = doraMergedWeight(m, W, mA, mB, S, layout);
    for (let o = 0; o < OUT; o++) {
      assert.ok(Math.abs(n[o]! - want.norms[o]!) < 1e-5, `norm ${o}`);
      assert.ok(Math.abs(f[o]! - m[o]! / want.norms[o]!) < 1e-5, `factor ${o}`);
    }
    merged.forEach((v, i) => {
      assert.ok(Math.abs(v - want.merged[i]!) < 1e-5, `merged ${i}: ${v} vs ${want.merged[i]}`);
    });
  });
}

test("doraParamCount: r·(in + out) + out", () => {
  assert.equal(doraParamCount(8, 576, 192), 8 * (576 + 192) + 192);
});

/** n from the unperturbed copies A0, B0 (const inputs), so the finite difference sees it constant. */
function heldNorm(W: Value, A0: Value, B0: Value, columns: boolean): Value {
  const w2 = o.reduceSum(o.mul(W, W), [columns ? 0 : 1], false);
  const P = columns ? o.product(A0, W, false, false) : o.product(A0, W, false, true);
  return doraNorm(w2, P, A0, B0, S);
}

/** Inputs A, B and their const copies with the same values. */
function pair(shape: number[], seed: number): [InputSpec, InputSpec] {
  const values = [...rand(shape[0]! * shape[1]!, seed)].map((v) => Math.round(v * 4096) / 4096);
  return [
    { shape, values },
    { shape, values, kind: "const" },
  ];
}

const F64 = { dtype: "float64", samples: 8 } as const;

test("DoRA linear: gradients w.r.t. x, A, B, m match finite differences with n held constant", async () => {
  const [A, A0] = pair([R, IN], 5);
  const [B, B0] = pair([OUT, R], 6);
  const r = await checkGradient(
    (x, A, B, m, W, bias, A0, B0) =>
      doraLinear(nn.linear(x!, W!), bias!, x!, A!, B!, S, doraGraphFactor(m!, heldNorm(W!, A0!, B0!, false))),
    [
      { shape: [2, 3, IN] },
      A,
      B,
      { shape: [OUT], offset: 1 },
      { shape: [OUT, IN], kind: "const" },
      { shape: [OUT], kind: "const" },
      A0,
      B0,
    ],
    F64,
  );
  assert.ok(r.checked > 0);
});

test("DoRA linear with dropout (PEFT's form): gradients w.r.t. x, A, B, m match finite differences", async () => {
  const [A, A0] = pair([R, IN], 7);
  const [B, B0] = pair([OUT, R], 8);
  const keep = Array.from({ length: 2 * 3 * IN }, (_, i) => (i % 3 === 0 ? 0 : 1 / 0.7));
  await checkGradient(
    (x, A, B, m, W, bias, A0, B0, keep) => {
      const d = o.mul(x!, keep!);
      const f = doraGraphFactor(m!, heldNorm(W!, A0!, B0!, false));
      return doraLinearDropout(nn.linear(x!, W!), bias!, nn.linear(d, W!), nn.linear(d, A!), B!, S, f);
    },
    [
      { shape: [2, 3, IN] },
      A,
      B,
      { shape: [OUT], offset: 1 },
      { shape: [OUT, IN], kind: "const" },
      { shape: [OUT], kind: "const" },
      A0,
      B0,
      { shape: [2, 3, IN], kind: "const", values: keep },
    ],
    F64,
  );
});

test("DoRA embedding: gradients w.r.t. A, B, m match finite differences with n held constant", async () => {
  const VOCAB = IN;
  const [A, A0] = pair([R, VOCAB], 9);
  const [B, B0] = pair([OUT, R], 10);
  await checkGradient(
    (ids, A, B, m, E, A0, B0) =>
      doraEmbedding(
        nn.embedding(E!, ids!),
        ids!,
        A!,
        B!,
        S,
        doraGraphFactor(m!, heldNorm(E!, A0!, B0!, true)),
      ),
    [
      { shape: [2, 3], kind: "int64", values: [0, 1, 4, 2, 4, 3] },
      A,
      B,
      { shape: [OUT], offset: 1 },
      { shape: [VOCAB, OUT], kind: "const" },
      A0,
      B0,
    ],
    F64,
  );
});

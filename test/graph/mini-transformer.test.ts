/**
 * Whole-graph gradient check: a 2-layer pre-norm transformer (RMSNorm, causal multi-head attention with
 * rotary embeddings, SwiGLU MLP, tied head, token cross-entropy) whose q and v projections carry
 * LoRA-style A/B graph inputs: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ. The derivatives of the loss w.r.t. every A and B
 * are compared with central differences in float64.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Value } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import * as o from "../../src/graph/ops.js";
import { checkGradient, type InputSpec, randn, rng } from "./gradcheck.js";

const B = 2;
const T = 5;
const D = 8;
const H = 2;
const HD = D / H;
const F = 12;
const V = 11;
const R = 2;
const LAYERS = 2;
const SCALE = 2; // alpha / r

const rand = rng(7);
const weight = (...shape: number[]) =>
  randn(
    rand,
    shape.reduce((a, b) => a * b, 1),
  ).map((v) => v * 0.4);

function ropeTables(): { cos: number[]; sin: number[] } {
  const cos: number[] = [];
  const sin: number[] = [];
  for (let p = 0; p < T; p++) {
    for (let i = 0; i < HD; i++) {
      const freq = 1 / 10000 ** ((2 * (i % (HD / 2))) / HD);
      cos.push(Math.cos(p * freq));
      sin.push(Math.sin(p * freq));
    }
  }
  return { cos, sin };
}

test("grad whole graph: 2-layer mini transformer with LoRA A/B inputs (float64)", async (t) => {
  const { cos, sin } = ropeTables();
  const ids = [1, 4, 2, 9, 3, 0, 7, 7, 5, 10];
  const labels = [4, 2, 9, 3, -100, 7, 7, 5, 10, -100];
  // Inputs: ids, labels, cos, sin, embedding, then per layer: 2 norms, q,k,v,o, gate, up, down; final norm;
  // then LoRA A/B for q and v of each layer (the differentiated inputs).
  const frozen: InputSpec[] = [
    { shape: [B, T], kind: "int64", values: ids },
    { shape: [B, T], kind: "int64", values: labels },
    { shape: [T, HD], kind: "const", values: cos },
    { shape: [T, HD], kind: "const", values: sin },
    { shape: [V, D], kind: "const", values: weight(V, D) },
  ];
  for (let l = 0; l < LAYERS; l++) {
    frozen.push({ shape: [D], kind: "const", values: weight(D).map((v) => 1 + v) });
    frozen.push({ shape: [D], kind: "const", values: weight(D).map((v) => 1 + v) });
    for (let k = 0; k < 4; k++) frozen.push({ shape: [D, D], kind: "const", values: weight(D, D) });
    frozen.push({ shape: [F, D], kind: "const", values: weight(F, D) });
    frozen.push({ shape: [F, D], kind: "const", values: weight(F, D) });
    frozen.push({ shape: [D, F], kind: "const", values: weight(D, F) });
  }
  frozen.push({ shape: [D], kind: "const", values: weight(D).map((v) => 1 + v) });
  const lora: InputSpec[] = [];
  for (let l = 0; l < LAYERS; l++) {
    for (const _ of ["q", "v"]) {
      lora.push({ shape: [R, D], scale: 0.5 }); // A
      lora.push({ shape: [D, R], scale: 0.5 }); // B (non-zero so both get gradients)
    }
  }

  const build = (...xs: Value[]): Value => {
    let k = 0;
    const next = () => xs[k++]!;
    const [idsV, labelsV, cosV, sinV, emb] = [next(), next(), next(), next(), next()];
    const layers = [...Array(LAYERS)].map(() => ({
      n1: next(),
      n2: next(),
      q: next(),
      k: next(),
      v: next(),
      o: next(),
      gate: next(),
      up: next(),
      down: next(),
    }));
    const finalNorm = next();
    const adapters = [...Array(LAYERS)].map(() => ({ qA: next(), qB: next(), vA: next(), vB: next() }));
    const loraLinear = (x: Value, w: Value, a: Value, b: Value) =>
      o.add(nn.linear(x, w), o.mul(nn.linear(nn.linear(x, a), b), SCALE));
    const heads = (x: Value) => o.transpose(o.reshape(x, [B, T, H, HD]), [0, 2, 1, 3]);
    const g = idsV.graph;
    // [T, T] additive mask: row = query i, column = key j; keys after the query get -1e9.
    const future = o.greater(o.unsqueeze(o.range(g, T), [0]), o.unsqueeze(o.range(g, T), [1]));
    const causalMask = o.where(future, o.scalar(g, -1e9, "float64"), 0);

    let h = nn.embedding(emb, idsV);
    layers.forEach((L, l) => {
      const A = adapters[l]!;
      const x = o.rmsNorm(h, L.n1, 1e-5);
      const q = nn.rope(heads(loraLinear(x, L.q, A.qA, A.qB)), cosV, sinV);
      const kk = nn.rope(heads(nn.linear(x, L.k)), cosV, sinV);
      const v = heads(loraLinear(x, L.v, A.vA, A.vB));
      const scores = o.add(o.product(q, kk, false, true, 1 / Math.sqrt(HD)), causalMask);
      const ctx = o.matmul(o.softmax(scores, -1), v);
      const merged = o.reshape(o.transpose(ctx, [0, 2, 1, 3]), [B, T, D]);
      h = o.add(h, nn.linear(merged, L.o));
      const y = o.rmsNorm(h, L.n2, 1e-5);
      h = o.add(h, nn.linear(o.mul(o.silu(nn.linear(y, L.gate)), nn.linear(y, L.up)), L.down));
    });
    const logits = nn.linear(o.rmsNorm(h, finalNorm, 1e-5), emb);
    return nn.crossEntropy(logits, labelsV);
  };

  const r = await checkGradient(build, [...frozen, ...lora], { dtype: "float64", samples: 6, seed: 3 });
  t.diagnostic(
    `mini transformer: ${r.checked} partials over ${lora.length} LoRA tensors, max |err| ${r.maxAbsErr.toExponential(2)}`,
  );
  assert.equal(r.checked, lora.length * 6);
});

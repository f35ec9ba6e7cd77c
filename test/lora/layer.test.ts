/**
 * layer.ts: the graph forward (s a constant, as training builds it, or a fed scalar, as serving
 * does) equals x·(W + s·B·A)ᵀ with the merged delta; the embedding path equals the merged table's
 * rows; the scaling and the parameter count.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { emitModel } from "../../src/graph/emit.js";
import { Graph } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import { Session } from "../../src/graph/runtime.js";
import { deltaWeight, loraEmbedding, loraLinear, loraParamCount, loraScaling } from "../../src/lora/layer.js";
import { maxAbsDiff } from "./fixtures.js";

const f32 = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3));

test("scaling alpha/r and rsLoRA alpha/√r; r·(in + out) parameters", () => {
  assert.equal(loraScaling(16, 8, false), 2);
  assert.equal(loraScaling(8, 16, true), 2);
  assert.equal(loraParamCount(8, 4096, 4096), 65536);
});

test("linear and embedding forward equal the merged weight, with s constant or fed", async () => {
  const [r, fin, fout, vocab, s] = [3, 5, 4, 7, 1.5];
  const W = f32(fout * fin, 1);
  const A = f32(r * fin, 2);
  const B = f32(fout * r, 3);
  const E = f32(vocab * fout, 4);
  const eA = f32(r * vocab, 5);
  const x = f32(2 * fin, 6);
  const ids = BigInt64Array.of(0n, 6n, 3n);

  const g = new Graph();
  const xv = g.input("x", "float32", [2, fin]);
  const Wv = g.input("W", "float32", [fout, fin]);
  const Av = g.input("A", "float32", [r, fin]);
  const Bv = g.input("B", "float32", [fout, r]);
  const sv = g.input("s", "float32", []);
  const Ev = g.input("E", "float32", [vocab, fout]);
  const eAv = g.input("eA", "float32", [r, vocab]);
  const idv = g.input("ids", "int64", [3]);
  g.output(loraLinear(nn.linear(xv, Wv), xv, Av, Bv, s), "constant");
  g.output(loraLinear(nn.linear(xv, Wv), xv, Av, Bv, sv), "fed");
  g.output(loraEmbedding(nn.embedding(Ev, idv), idv, eAv, Bv, sv), "emb");
  const session = await Session.create(emitModel(g));
  const t = (dims: number[], data: Float32Array) => ({ dtype: "float32" as const, dims, data });
  const out = await session.run({
    x: t([2, fin], x),
    W: t([fout, fin], W),
    A: t([r, fin], A),
    B: t([fout, r], B),
    s: t([], Float32Array.of(s)),
    E: t([vocab, fout], E),
    eA: t([r, vocab], eA),
    ids: { dtype: "int64", dims: [3], data: ids },
  });
  await session.release();

  const dW = deltaWeight({ shape: [r, fin], data: A }, { shape: [fout, r], data: B }, s);
  const want = new Float32Array(2 * fout);
  for (let b = 0; b < 2; b++)
    for (let o = 0; o < fout; o++)
      for (let i = 0; i < fin; i++)
        want[b * fout + o]! += x[b * fin + i]! * (W[o * fin + i]! + dW[o * fin + i]!);
  assert.ok(maxAbsDiff(out["constant"]!.data as Float32Array, want) < 1e-5);
  assert.ok(maxAbsDiff(out["fed"]!.data as Float32Array, want) < 1e-5);

  const dE = deltaWeight({ shape: [r, vocab], data: eA }, { shape: [fout, r], data: B }, s, {
    embedding: true,
  });
  const rows = [...ids].flatMap((id) => {
    const k = Number(id) * fout;
    return Array.from({ length: fout }, (_, j) => E[k + j]! + dE[k + j]!);
  });
  assert.ok(maxAbsDiff(out["emb"]!.data as Float32Array, rows) < 1e-5);
});

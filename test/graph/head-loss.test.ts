/**
 * The fused LM head + cross-entropy: the frozen-head form (scored rows only, gradient formed in the
 * forward pass) against the trained-head form on the same data, and a batch with no scored token.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { emitModel } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { Graph } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import { Session, tensor } from "../../src/graph/runtime.js";
import { randn, rng } from "./gradcheck.js";

const [B, T, D, V] = [2, 5, 6, 11];

async function lossAndGrad(trainWeight: boolean, labels: number[]) {
  const r = rng(4);
  const g = new Graph();
  const h = g.input("h", "float32", ["batch", "seq", D]);
  const w = g.initializer("w", "float32", [V, D], { kind: "data", data: Float32Array.from(randn(r, V * D)) });
  const l = g.input("labels", "int64", ["batch", "seq"]);
  const loss = trainWeight
    ? nn.trainedHeadCrossEntropy(h, w, l)
    : nn.frozenHeadCrossEntropy(h, w, l, { chunks: 3 });
  const [dh] = grad(loss, [h]);
  g.output(loss, "loss");
  g.output(dh!, "dh");
  const s = await Session.create(emitModel(g));
  const out = await s.run({
    h: tensor("float32", [B, T, D], Float32Array.from(randn(r, B * T * D))),
    labels: tensor("int64", [B, T], BigInt64Array.from(labels.map(BigInt))),
  });
  await s.release();
  return { loss: (out["loss"]!.data as Float32Array)[0]!, dh: out["dh"]!.data as Float32Array };
}

test("frozen-head loss equals the trained-head form: loss and d hidden, with ignored positions", async () => {
  const labels = [3, -100, 10, 0, -100, -100, 7, 7, 1, -100];
  const frozen = await lossAndGrad(false, labels);
  const trained = await lossAndGrad(true, labels);
  assert.ok(Math.abs(frozen.loss - trained.loss) < 1e-5, `${frozen.loss} vs ${trained.loss}`);
  for (const [i, v] of frozen.dh.entries()) assert.ok(Math.abs(v - trained.dh[i]!) < 1e-5, `dh[${i}]`);
  labels.forEach((l, t) => {
    if (l === -100) for (let d = 0; d < D; d++) assert.equal(frozen.dh[t * D + d], 0, `ignored row ${t}`);
  });
});

test("frozen-head loss with no scored token: loss 0 and a zero gradient, not NaN", async () => {
  const none = await lossAndGrad(false, Array(B * T).fill(-100));
  assert.ok(none.loss === 0, `loss ${none.loss}`); // -0 counts
  assert.ok(none.dh.every((v) => v === 0));
});

/**
 * What the token cross-entropy keeps alive for the backward pass: the plain loss and the fused head with
 * a trained W keep exactly one [tokens, vocab] float tensor (logits or softmax); the fused head with a
 * frozen W keeps none, and its forward pass only makes [tokens/k, vocab] chunks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { liveNodes } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import { dimEq } from "../../src/graph/shape.js";

const isTokensByVocab = (v: Value) =>
  v.dtype === "float32" &&
  dimEq(
    v.shape.reduce<string | number>((a, d) => `${a}*${d}`, 1),
    "batch*seq*1000",
  );

for (const [name, lossOf, expected] of [
  ["crossEntropy(linear(h, W))", (h: Value, w: Value, l: Value) => nn.crossEntropy(nn.linear(h, w), l), 1],
  ["trainedHeadCrossEntropy(h, W)", (h: Value, w: Value, l: Value) => nn.trainedHeadCrossEntropy(h, w, l), 1],
  ["frozenHeadCrossEntropy(h, W)", (h: Value, w: Value, l: Value) => nn.frozenHeadCrossEntropy(h, w, l), 0],
] as const) {
  test(`${name}: the backward pass reads ${expected} [tokens, vocab] forward tensor(s)`, () => {
    const g = new Graph();
    const hidden = g.input("hidden", "float32", ["batch", "seq", 16]);
    const head = g.input("head", "float32", [1000, 16]);
    const labels = g.input("labels", "int64", ["batch", "seq"]);
    const loss = lossOf(hidden, head, labels);
    const forwardCount = g.nodes.length;
    const forwardValues = new Set<Value>(g.nodes.flatMap((n) => n.outputs));
    const [dHidden] = grad(loss, [hidden]);
    g.output(loss, "loss");
    g.output(dHidden!, "d_hidden");
    const backward = liveNodes(g).filter((n) => g.nodes.indexOf(n) >= forwardCount);
    const kept = new Set<Value>();
    for (const n of backward)
      for (const x of n.inputs) if (x && forwardValues.has(x) && isTokensByVocab(x)) kept.add(x);
    assert.ok(backward.length > 0);
    assert.equal(
      kept.size,
      expected,
      `forward [tokens, vocab] tensors read by the backward pass: ${[...kept].join(", ")}`,
    );
  });
}

test("frozenHeadCrossEntropy: no [tokens, vocab] value at all, only [chunk, vocab] blocks", () => {
  const g = new Graph();
  const hidden = g.input("hidden", "float32", ["batch", "seq", 16]);
  const head = g.initializer("head", "float32", [1000, 16], { kind: "data", data: new Float32Array(16000) });
  const labels = g.input("labels", "int64", ["batch", "seq"]);
  const loss = nn.frozenHeadCrossEntropy(hidden, head, labels, { chunks: 4 });
  const [dHidden] = grad(loss, [hidden]);
  g.output(loss, "loss");
  g.output(dHidden!, "d_hidden");
  const values = liveNodes(g).flatMap((n) => n.outputs);
  assert.equal(values.filter(isTokensByVocab).length, 0);
  const blocks = values.filter((v) => v.rank === 2 && v.shape[1] === 1000);
  assert.ok(blocks.length >= 4, `${blocks.length} [chunk, vocab] values`);
  assert.throws(() => grad(loss, [head]), /frozen here and gets no gradient \(use trainedHeadCrossEntropy\)/);
});

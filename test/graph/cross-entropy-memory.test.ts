/**
 * The token cross-entropy keeps at most one [tokens, vocab] float tensor alive for the backward pass:
 * the only forward value of that shape any backward node reads is the logits themselves.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { liveNodes } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import { dimEq } from "../../src/graph/shape.js";

for (const [name, lossOf] of [
  ["crossEntropy(linear(h, W))", (h: Value, w: Value, l: Value) => nn.crossEntropy(nn.linear(h, w), l)],
  ["lmHeadCrossEntropy(h, W)", (h: Value, w: Value, l: Value) => nn.lmHeadCrossEntropy(h, w, l)],
] as const) {
  test(`${name}: the backward pass reads a single [tokens, vocab] forward tensor`, () => {
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

    const isTokensByVocab = (v: Value) =>
      v.dtype === "float32" &&
      dimEq(
        v.shape.reduce<string | number>((a, d) => `${a}*${d}`, 1),
        "batch*seq*1000",
      );
    const backward = liveNodes(g).filter((n) => g.nodes.indexOf(n) >= forwardCount);
    const kept = new Set<Value>();
    for (const n of backward)
      for (const x of n.inputs) if (x && forwardValues.has(x) && isTokensByVocab(x)) kept.add(x);
    assert.ok(backward.length > 0);
    assert.equal(
      kept.size,
      1,
      `forward [tokens, vocab] tensors read by the backward pass: ${[...kept].join(", ")}`,
    );
  });
}

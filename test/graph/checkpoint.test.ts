/**
 * A layer checkpoint (graph/checkpoint.ts) on small blocks: its gradient (recomputed from the saved
 * input, with a region inside it) against finite differences, and the build errors that name it.
 * The full training step with checkpointed layers is checked in test/train/checkpoint-layers.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkpoint } from "../../src/graph/checkpoint.js";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { GraphBuildError } from "../../src/util/errors.js";
import { checkGradient } from "./gradcheck.js";

/** x + exp(h)·h for h = tanh(x·W), with exp(h) a hand-written region inside. */
function block(x: Value, w: Value): Value {
  const h = o.tanh(o.matmul(x, w));
  const [e] = x.graph.region({
    name: "exp",
    inputs: [h],
    forward: () => ({ outputs: [o.exp(h)], saved: [h] }),
    backward: ([h], [dy]) => [o.mul(dy, o.exp(h!))],
  });
  return o.add(x, o.mul(e!, h));
}

test("a checkpointed block's gradient (x and a weight), recomputed, against finite differences", async () => {
  const r = await checkGradient(
    (x, w) => {
      const y = checkpoint("b0", x, (x) => block(x, w));
      return checkpoint("b1", y, (y) => block(y, w));
    },
    [{ shape: [3, 4] }, { shape: [4, 4], scale: 0.5 }],
    { dtype: "float64" },
  );
  assert.ok(r.checked > 0);
});

test("a checkpoint's output must match its input, and checkpoints do not nest", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [3, 4]);
  assert.throws(
    () => checkpoint("wide", x, (x) => o.concat([x, x], 1)),
    (e: unknown) =>
      e instanceof GraphBuildError && /checkpoint "wide": output .* does not match its input/.test(e.message),
  );
  assert.throws(
    () => checkpoint("outer", x, (x) => checkpoint("inner", x, (x) => o.tanh(x))),
    (e: unknown) => e instanceof GraphBuildError && e.message.includes("checkpoints do not nest"),
  );
});

test("the recomputation reads the saved input through a gate on the output's gradient", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [3, 4]);
  const w = g.input("w", "float32", [4, 4]);
  const y = checkpoint("b", x, (x) => block(x, w));
  const before = g.nodes.length;
  const [dx] = grad(o.reduceSum(o.mul(y, y), [0, 1], false), [x]);
  const added = g.nodes.slice(before);
  const gate = added.find((n) => n.op === "Reshape" && n.inputs[0] === x);
  assert.ok(gate, "x is read through a Reshape");
  // No node of the backward pass reads x but the gate (and Shape, which reads no data); the gate's
  // shape is computed from a float value (the gradient), not from x's shape alone.
  for (const n of added)
    if (n !== gate && n.op !== "Shape")
      assert.ok(!n.inputs.includes(x), `${n.op} reads the saved x directly`);
  const shapeProducers = new Set<string>();
  const walk = (v: Value) => {
    if (!v.producer || !added.includes(v.producer)) return;
    shapeProducers.add(v.producer.op);
    for (const i of v.producer.inputs) if (i) walk(i);
  };
  walk(gate.inputs[1]!);
  assert.ok(shapeProducers.has("Greater"), [...shapeProducers].join(","));
  assert.ok(dx);
});

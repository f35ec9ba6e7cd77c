/**
 * ops.stopGradient: the value passes through unchanged, but the autodiff treats it as a constant
 * (PyTorch's detach()), also in a layer checkpoint's recomputed copy.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkpoint } from "../../src/graph/checkpoint.js";
import { emitModel } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { Session } from "../../src/graph/runtime.js";

const X = Float32Array.of(0.5, -1.5, 2, 3);

/** The value and the gradient w.r.t. x of Σ f(x) at X. */
async function valueAndGrad(f: (x: Value) => Value): Promise<{ y: number[]; dx: number[] }> {
  const g = new Graph();
  const x = g.input("x", "float32", [1, 2, 2]);
  const y = f(x);
  const [dx] = grad(o.reduceSum(y, [0, 1, 2], false), [x]);
  g.output(y, "y");
  g.output(dx!, "dx");
  const s = await Session.create(emitModel(g), { threads: 1 });
  const out = await s.run({ x: { dtype: "float32", dims: [1, 2, 2], data: X } });
  await s.release();
  return { y: [...(out["y"]!.data as Float32Array)], dx: [...(out["dx"]!.data as Float32Array)] };
}

test("stopGradient: x · stopGradient(x) has the value x² and the gradient x, not 2x", async () => {
  const { y, dx } = await valueAndGrad((x) => o.mul(x, o.stopGradient(x)));
  assert.deepEqual(
    y,
    [...X].map((v) => v * v),
  );
  assert.deepEqual(dx, [...X]);
});

test("stopGradient: a path through it alone gives a zero gradient", async () => {
  const { dx } = await valueAndGrad((x) => o.add(o.stopGradient(o.mul(x, x)), 0));
  assert.deepEqual(dx, [0, 0, 0, 0]);
});

test("stopGradient inside a checkpointed layer stays a barrier in the recomputed copy", async () => {
  const { dx } = await valueAndGrad((x) => checkpoint("c", x, (h) => o.mul(h, o.stopGradient(o.exp(h)))));
  assert.deepEqual(
    dx,
    [...X].map((v) => Math.fround(Math.exp(v))),
  );
});

/**
 * The contract of regions with a hand-written backward pass (Graph.region): forward returns its
 * outputs and the values it saves, backward receives exactly those, and `grad` refuses, naming the
 * region, a gradient that reaches a value inside it, a backward pass that reaches past its saved
 * values, and a value carrying a gradient into the region that is not one of its inputs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { GraphBuildError } from "../../src/util/errors.js";
import { checkGradient } from "./gradcheck.js";

function throwsBuildError(f: () => unknown, message: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof GraphBuildError, `expected a GraphBuildError, got ${e}`);
    assert.equal(e.message, message);
    return true;
  });
}

const total = (v: Value) => o.reduceSum(v, [...Array(v.rank).keys()], false);

/** y = exp(x)·2 with its backward written from the saved exp(x); `inner` is exp(x). */
function scaledExp(x: Value): { y: Value; inner: Value } {
  let inner: Value | undefined;
  const [y] = x.graph.region({
    name: "scaledExp",
    inputs: [x],
    forward: () => {
      const e = o.exp(x);
      inner = e;
      return { outputs: [o.mul(e, 2)], saved: [e] };
    },
    backward: ([e], [dy]) => [o.mul(o.mul(dy, e), 2)],
  });
  return { y, inner: inner! };
}

test("a region's backward pass gives the gradient from its saved values", async () => {
  const r = await checkGradient((x) => scaledExp(x).y, [{ shape: [3, 4] }], { dtype: "float64" });
  assert.ok(r.checked > 0);
});

test("a gradient that reaches a value inside a region is an error naming the region", () => {
  const g = new Graph();
  const x = g.input("x", "float64", [3, 4]);
  const { y, inner } = scaledExp(x);
  const loss = total(o.add(y, inner)); // exp(x) used outside the region
  throwsBuildError(
    () => grad(loss, [x]),
    `autodiff: a gradient reaches ${inner}, a value inside region "scaledExp"; only the region's outputs carry gradients`,
  );
});

test("a value inside a region used outside without a gradient is fine", () => {
  const g = new Graph();
  const x = g.input("x", "float64", [3, 4]);
  let positive: Value | undefined;
  const [y] = g.region({
    name: "relu",
    inputs: [x],
    forward: () => {
      positive = o.greater(x, 0);
      return { outputs: [o.where(positive, x, 0)], saved: [positive] };
    },
    backward: ([p], [dy]) => [o.where(p, dy, 0)],
  });
  // The bool mask leaves the region, but carries no gradient.
  const [dx] = grad(total(o.where(positive!, y, 1)), [x]);
  assert.deepEqual(dx!.shape, [3, 4]);
});

test("a backward pass that uses a forward value it did not save is an error naming the region", () => {
  const g = new Graph();
  const x = g.input("x", "float64", [3, 4]);
  let e: Value | undefined;
  const [y] = g.region({
    name: "leaky",
    inputs: [x],
    forward: () => {
      e = o.exp(x);
      return { outputs: [o.mul(e, 2)], saved: [] };
    },
    backward: (_saved, [dy]) => [o.mul(o.mul(dy, e!), 2)], // e through a closure
  });
  throwsBuildError(
    () => grad(total(y), [x]),
    `autodiff: the backward pass of region "leaky" uses ${e}, which is not among its saved values`,
  );
});

test("a value carrying a gradient into a region must be one of its inputs", () => {
  const g = new Graph();
  const x = g.input("x", "float64", [3, 4]);
  const w = g.input("w", "float64", [3, 4]);
  const [y] = g.region({
    name: "half-declared",
    inputs: [x],
    forward: () => ({ outputs: [o.mul(x, w)], saved: [w] }),
    backward: ([w], [dy]) => [o.mul(dy, w)],
  });
  throwsBuildError(
    () => grad(total(y), [x, w]),
    `autodiff: region "half-declared" uses ${w}, which carries a gradient, but it is not one of the region's inputs`,
  );
  // Differentiated with respect to x only, w carries no gradient: accepted.
  const [dx] = grad(total(y), [x]);
  assert.deepEqual(dx!.shape, [3, 4]);
});

test("regions do not nest, and their outputs are computed inside them", () => {
  const g = new Graph();
  const x = g.input("x", "float64", [3, 4]);
  const inner = () =>
    g.region({
      name: "inner",
      inputs: [x],
      forward: () => ({ outputs: [o.neg(x)], saved: [] }),
      backward: (_s, [dy]) => [o.neg(dy)],
    });
  throwsBuildError(
    () =>
      g.region({
        name: "outer",
        inputs: [x],
        forward: () => ({ outputs: inner(), saved: [] }),
        backward: (_s, [dy]) => [dy],
      }),
    'region "inner" is built inside region "outer"',
  );
  const before = o.neg(x);
  throwsBuildError(
    () =>
      g.region({
        name: "borrowed",
        inputs: [x],
        forward: () => ({ outputs: [before], saved: [] }),
        backward: (_s, [dy]) => [o.neg(dy)],
      }),
    `region "borrowed": output ${before} is not computed inside it`,
  );
});

/** y1 = 3x, y2 = x² with a hand-written backward; the caller may use either output or both. */
function twoOutputs(x: Value): [Value, Value] {
  return x.graph.region({
    name: "twoOutputs",
    inputs: [x],
    forward: () => ({ outputs: [o.mul(x, 3), o.mul(x, x)], saved: [x] }),
    backward: ([x], [d1, d2]) => [o.add(o.mul(d1, 3), o.mul(o.mul(d2, x), 2))],
  });
}

test("a region with two outputs: both used, and one of them unused (zeros for its gradient)", async () => {
  for (const build of [
    (x: Value) => {
      const [a, b] = twoOutputs(x);
      return o.add(a, o.mul(b, 0.5));
    },
    (x: Value) => twoOutputs(x)[1],
  ]) {
    const r = await checkGradient(build, [{ shape: [2, 3] }], { dtype: "float64" });
    assert.ok(r.checked > 0);
  }
});

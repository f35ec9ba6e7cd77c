/**
 * The autodiff's refusals: an op without a backward rule on the path from a trainable value to the
 * loss, and the cases that the Gather and Slice rules do not cover. Each is a GraphBuildError, raised
 * when the backward graph is built, with a message naming the op; ops off that path are never asked
 * for a rule.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { GraphBuildError } from "../../src/util/errors.js";

/** Asserts that `f` throws a GraphBuildError with exactly `message`. */
function throwsBuildError(f: () => unknown, message: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof GraphBuildError, `expected a GraphBuildError, got ${e}`);
    assert.equal(e.message, message);
    return true;
  });
}

function setup(): { g: Graph; x: Value } {
  const g = new Graph();
  return { g, x: g.input("x", "float64", [3, 4]) };
}

const total = (v: Value) => o.reduceSum(v, [...Array(v.rank).keys()], false);

test("grad refuses an op without a rule on the path to a trainable input", () => {
  const { x } = setup();
  // ReduceMax has no backward rule.
  const loss = total(o.mul(o.reduceMax(x, [1], false), 2));
  throwsBuildError(() => grad(loss, [x]), "autodiff: no gradient rule for op ReduceMax");
});

test("grad names the domain of a contrib op without a rule", () => {
  const { g, x } = setup();
  const y = g.addNode("QuickGelu", [x], {}, [{ dtype: x.dtype, shape: x.shape }], o.MS_DOMAIN).outputs[0]!;
  throwsBuildError(() => grad(total(y), [x]), "autodiff: no gradient rule for op com.microsoft.QuickGelu");
});

test("grad asks no rule of ops off the path from the trainable inputs to the loss", () => {
  const { g, x } = setup();
  const frozen = g.input("c", "float64", [3, 4]);
  // A rule-less op on a frozen input, one on an integer path (ArgMax's indices carry no gradient),
  // and one whose result the loss does not use.
  const scale = o.reduceMax(frozen, [0, 1], false);
  const argmax = g.addNode("ArgMax", [x], { axis: { kind: "int", v: 1 }, keepdims: { kind: "int", v: 0 } }, [
    { dtype: "int64", shape: [3] },
  ]).outputs[0]!;
  const picked = o.gather(frozen, argmax, 0); // [3, 4]
  o.reduceMax(x, [1], false); // unused
  const loss = total(o.mul(o.mul(x, picked), scale));
  const [dx] = grad(loss, [x]);
  assert.deepEqual(dx!.shape, [3, 4]);
});

test("grad refuses Gather on an axis other than 0", () => {
  for (const axis of [1, -1]) {
    const { g, x } = setup();
    const ids = g.input("ids", "int64", [2]);
    throwsBuildError(
      () => grad(total(o.gather(x, ids, axis)), [x]),
      "autodiff: Gather is differentiable on axis 0 only",
    );
  }
  // axis -2 is axis 0 of a rank-2 table: accepted.
  const { g, x } = setup();
  const [dx] = grad(total(o.gather(x, g.input("ids", "int64", [2]), -2)), [x]);
  assert.deepEqual(dx!.shape, [3, 4]);
});

test("grad refuses Slice with a step other than 1", () => {
  for (const [starts, ends, steps] of [
    [[0], [4], [2]],
    [[3], [0], [-1]],
  ] as const) {
    const { x } = setup();
    throwsBuildError(
      () => grad(total(o.slice(x, [...starts], [...ends], [1], [...steps])), [x]),
      "autodiff: Slice with steps other than 1",
    );
  }
  // One strided axis among several sliced ones is enough.
  const { x } = setup();
  throwsBuildError(
    () => grad(total(o.slice(x, [0, 0], [2, 4], [0, 1], [1, 2])), [x]),
    "autodiff: Slice with steps other than 1",
  );
});

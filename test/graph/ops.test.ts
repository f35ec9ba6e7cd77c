/** Shape and dtype inference: mistakes are caught when the graph is built, naming the op and shapes. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { emitModel } from "../../src/graph/emit.js";
import { Graph } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { Session } from "../../src/graph/runtime.js";
import { addDims, divDims, mulDims } from "../../src/graph/shape.js";

test("symbolic dims multiply, divide and add", () => {
  assert.equal(mulDims("seq", "batch"), "batch*seq");
  assert.equal(mulDims(2, "b", 3), "6*b");
  assert.equal(divDims("batch*seq", "seq"), "batch");
  assert.equal(divDims("batch", "seq"), undefined);
  assert.equal(addDims("past", "seq"), "past+seq");
  assert.equal(addDims(2, 3), 5);
});

test("shape errors name the op and the shapes", () => {
  const g = new Graph();
  const a = g.input("a", "float32", ["batch", 3, 4]);
  const b = g.input("b", "float32", [5, 6]);
  assert.throws(
    () => o.matmul(a, b),
    /^GraphBuildError: MatMul: inner dims differ: 4 vs 5 \(inputs float32\[batch, 3, 4\], float32\[5, 6\]\)$/,
  );
  assert.throws(() => o.add(a, b), /Add: cannot broadcast shapes \[batch, 3, 4\] and \[5, 6\]/);
  assert.throws(() => o.reshape(a, [5, -1]), /Reshape: cannot infer -1/);
  const i = g.input("i", "int64", [2]);
  assert.throws(() => o.add(a, i), /Add: dtype mismatch float32 vs int64/);
  assert.throws(() => o.softmax(a, 3), /Softmax: axis 3 out of range for rank 3/);
  assert.throws(() => o.concat([a, b], 0), /Concat: rank\/dtype mismatch/);
});

test("inferred shapes follow symbolic dims through reshapes", () => {
  const g = new Graph();
  const x = g.input("x", "float32", ["batch", "seq", 8]);
  const flat = o.reshape(x, [-1, 8]);
  assert.deepEqual(flat.shape, ["batch*seq", 8]);
  const heads = o.transpose(o.reshape(x, ["batch", "seq", 2, 4]), [0, 2, 1, 3]);
  assert.deepEqual(heads.shape, ["batch", 2, "seq", 4]);
  assert.deepEqual(o.slice(x, [-1], [o.SLICE_END], [1]).shape, ["batch", 1, 8]);
  assert.deepEqual(o.concat([x, x], 1).shape, ["batch", "seq+seq", 8]);
});

test("one session serves many batch and sequence sizes", async () => {
  const g = new Graph();
  const x = g.input("x", "float32", ["batch", "seq", 4]);
  // [B,T,4] -> [B*T,4] -> [B,T,2,2] needs B and T at run time: read from x's shape.
  const y = o.reshape(o.reshape(x, [-1, 4]), ["batch", "seq", 2, 2]);
  g.output(o.reduceSum(y, [3], false), "y");
  const s = await Session.create(emitModel(g));
  for (const [b, t] of [
    [1, 3],
    [2, 5],
  ] as const) {
    const data = Float32Array.from({ length: b * t * 4 }, (_, k) => k);
    const out = (await s.run({ x: { dtype: "float32", dims: [b, t, 4], data } }))["y"]!;
    assert.deepEqual(out.dims, [b, t, 2]);
    assert.equal(out.data[0], 1);
    assert.equal(out.data[1], 5);
  }
  await s.release();
});

test("a missing feed and a bad graph are one-line errors", async () => {
  const g = new Graph();
  const x = g.input("x", "float32", [2]);
  g.output(o.neg(x), "y");
  const s = await Session.create(emitModel(g));
  await assert.rejects(s.run({}), /missing graph input "x"/);
  await assert.rejects(Session.create(new Uint8Array([1, 2, 3])), (e: Error) => {
    assert.match(e.message, /^onnxruntime could not load the graph/);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
});

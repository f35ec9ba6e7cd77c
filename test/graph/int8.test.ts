/**
 * Frozen weights in int8: the quantization itself (exact bounds), and the int8 linear layer's forward
 * and input-gradient products against float64 references, for both weight layouts; the int8 output
 * head of the frozen-head loss against the float32 head.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { emitModel } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { int8Linear, quantizeRows } from "../../src/graph/int8.js";
import { Graph } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import { int8WeightMax } from "../../src/graph/ort-node.js";
import { Session, tensor } from "../../src/graph/runtime.js";
import { Int8Feeds } from "../../src/models/base-context.js";
import { randn, rng } from "./gradcheck.js";

const OUT = 24;
const IN = 40;

function randomWeight(seed: number): Float32Array {
  const w = Float32Array.from(randn(rng(seed), OUT * IN), (v) => v * 0.1);
  w.fill(0, 5 * IN, 6 * IN); // an all-zero row
  w[3 * IN + 7] = 0.9; // an outlier in row 3
  return w;
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

for (const qmax of [127, 63]) {
  test(`quantizeRows to ±${qmax}: |W − Q·s| ≤ s/2 per row, Qᵀ is Q's transpose, and both layouts agree`, () => {
    const w = randomWeight(1);
    const q = quantizeRows(w, OUT, IN, false, qmax);
    for (let r = 0; r < OUT; r++) {
      let max = 0;
      for (let i = 0; i < IN; i++) max = Math.max(max, Math.abs(w[r * IN + i]!));
      assert.equal(q.scale[r], Math.fround(max / qmax), `row ${r} scale`);
      for (let i = 0; i < IN; i++) {
        const k = r * IN + i;
        assert.ok(Math.abs(q.q[k]!) <= qmax);
        assert.ok(Math.abs(w[k]! - q.q[k]! * q.scale[r]!) <= q.scale[r]! / 2 + 1e-7, `element ${r},${i}`);
        assert.equal(q.qT[i * OUT + r], q.q[k]);
      }
    }
    assert.equal(q.q[3 * IN + 7], qmax, `the row's largest magnitude maps to ±${qmax}`);
    const fromConv1D = quantizeRows(transpose(w, OUT, IN), OUT, IN, true, qmax);
    assert.deepEqual(fromConv1D.q, q.q);
    assert.deepEqual(fromConv1D.qT, q.qT);
    assert.deepEqual(fromConv1D.scale, q.scale);
  });
}

for (const layout of ["[out, in]", "[in, out] (Conv1D)"]) {
  test(`int8Linear ${layout}: y and d x within 2% of the float64 products`, async (t) => {
    const w = randomWeight(2);
    const stored = layout.startsWith("[out") ? w : transpose(w, OUT, IN);
    // The range this CPU's int8 kernel takes without saturating (ort-node.ts), as --base-int8 uses.
    const quant = quantizeRows(stored, OUT, IN, !layout.startsWith("[out"), int8WeightMax());
    const g = new Graph();
    const x = g.input("x", "float32", ["n", IN]);
    const dy = g.input("dy", "float32", ["n", OUT]);
    const feeds = new Int8Feeds();
    const y = int8Linear(x, feeds.add(g, "w", quant));
    const [dx] = grad(y, [x], dy);
    g.output(y, "y");
    g.output(dx!, "dx");
    const s = await Session.create(emitModel(g));
    const n = 6;
    const r = rng(3);
    const xs = Float32Array.from(randn(r, n * IN));
    const dys = Float32Array.from(randn(r, n * OUT));
    const out = await s.run({
      ...feeds.feeds,
      x: tensor("float32", [n, IN], xs),
      dy: tensor("float32", [n, OUT], dys),
    });
    const yRef = new Float64Array(n * OUT);
    const dxRef = new Float64Array(n * IN);
    for (let t = 0; t < n; t++)
      for (let o = 0; o < OUT; o++)
        for (let i = 0; i < IN; i++) {
          yRef[t * OUT + o]! += xs[t * IN + i]! * w[o * IN + i]!;
          dxRef[t * IN + i]! += dys[t * OUT + o]! * w[o * IN + i]!;
        }
    const relErr = (got: ArrayLike<number>, ref: Float64Array) => {
      let num = 0;
      let den = 0;
      for (let k = 0; k < ref.length; k++) {
        num += (got[k]! - ref[k]!) ** 2;
        den += ref[k]! ** 2;
      }
      return Math.sqrt(num / den);
    };
    const ey = relErr(out["y"]!.data as Float32Array, yRef);
    const edx = relErr(out["dx"]!.data as Float32Array, dxRef);
    t.diagnostic(`relative error: y ${ey.toExponential(2)}, d x ${edx.toExponential(2)}`);
    assert.ok(ey < 0.02 && ey > 0, `y: relative error ${ey}`);
    assert.ok(edx < 0.02 && edx > 0, `d x: relative error ${edx}`);
  });
}

test("int8 head (--base-int8): the frozen-head loss within 1% and d hidden within 3% of the float32 head's", async (t) => {
  const V = 300;
  const D = 32;
  const r = rng(5);
  const w = Float32Array.from(randn(r, V * D), (v) => v * 0.2);
  const run = async (int8: boolean) => {
    const g = new Graph();
    const h = g.input("h", "float32", ["b", "t", D]);
    const labels = g.input("labels", "int64", ["b", "t"]);
    const head = g.initializer("head", "float32", [V, D], { kind: "data", data: w });
    const feeds = new Int8Feeds();
    const opts = int8
      ? { int8: feeds.addForward(g, "head", quantizeRows(w, V, D, false, int8WeightMax())) }
      : {};
    const loss = nn.frozenHeadCrossEntropy(h, head, labels, { chunks: 2, ...opts });
    const [dh] = grad(loss, [h]);
    g.output(loss, "loss");
    g.output(dh!, "dh");
    const ops = [...g.nodes].map((n) => n.op);
    const s = await Session.create(emitModel(g));
    const rr = rng(6);
    const out = await s.run({
      ...feeds.feeds,
      h: tensor("float32", [2, 5, D], Float32Array.from(randn(rr, 2 * 5 * D))),
      labels: tensor(
        "int64",
        [2, 5],
        BigInt64Array.from({ length: 10 }, (_, k) => BigInt(k === 3 ? -100 : (k * 37) % V)),
      ),
    });
    return { loss: (out["loss"]!.data as Float32Array)[0]!, dh: out["dh"]!.data as Float32Array, ops };
  };
  const f32 = await run(false);
  const i8 = await run(true);
  assert.ok(i8.ops.includes("DynamicQuantizeMatMul") && !f32.ops.includes("DynamicQuantizeMatMul"));
  const lossErr = Math.abs(i8.loss - f32.loss) / Math.abs(f32.loss);
  let num = 0;
  let den = 0;
  f32.dh.forEach((v, k) => {
    num += (i8.dh[k]! - v) ** 2;
    den += v ** 2;
  });
  const dhErr = Math.sqrt(num / den);
  t.diagnostic(
    `loss ${f32.loss} vs ${i8.loss} (relative ${lossErr.toExponential(2)}), d hidden relative ${dhErr.toExponential(2)}`,
  );
  assert.ok(lossErr > 0 && lossErr < 0.01, `loss: relative error ${lossErr}`);
  assert.ok(dhErr > 0 && dhErr < 0.03, `d hidden: relative error ${dhErr}`);
});

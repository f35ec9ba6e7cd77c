/**
 * LoRA dropout: the keep masks (rate, independence per module, reproducible per seed) and their use
 * in the graph (scale 1/(1-p), the gradient through the same mask, p = 0 keeps everything).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { emitModel } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import * as o from "../../src/graph/ops.js";
import { Session, tensor } from "../../src/graph/runtime.js";
import { DropoutInputs, dropoutMaskName, keepMask, MaskBuffers, maskFeeds } from "../../src/lora/dropout.js";
import { Rng } from "../../src/util/rng.js";

test("Rng.fillKeepFlags: the generator's own draws, two 16-bit halves each, odd lengths included", () => {
  for (const n of [1, 2, 7, 1000]) {
    const fast = new Rng(42).fillKeepFlags(new Uint8Array(n), 20000);
    const slow = new Rng(42);
    const expected = new Uint8Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = slow.next();
      expected[i] = (r & 0xffff) >= 20000 ? 1 : 0;
      if (i + 1 < n) expected[i + 1] = r >>> 16 >= 20000 ? 1 : 0;
    }
    assert.deepEqual(fast, expected, `n = ${n}`);
  }
});

test("keep masks: the rate, per-module independence, same seed same mask, p = 0 keeps all", () => {
  const n = 64 * 512;
  const a1 = keepMask(7, 1, 0.25, n);
  const a2 = keepMask(7, 2, 0.25, n);
  const dropped = a1.filter((v) => v === 0).length / n;
  assert.ok(Math.abs(dropped - 0.25) < 0.01, `dropped fraction ${dropped}`);
  assert.ok(a1.every((v) => v === 0 || v === 1));
  const same = a1.filter((v, i) => v === a2[i]).length / n;
  assert.ok(
    Math.abs(same - 0.625) < 0.02,
    `modules' masks agree on ${same} of the elements (independent: 0.625)`,
  );
  assert.deepEqual(keepMask(7, 1, 0.25, n), a1);
  assert.notDeepEqual(keepMask(8, 1, 0.25, n), a1);
  assert.ok(keepMask(7, 1, 0, n).every((v) => v === 1));
  // Drawn into a reused array (longer than needed, holding an earlier draw): the same mask.
  const buffers = new MaskBuffers();
  buffers.draw("m", n + 5).fill(9);
  assert.deepEqual(keepMask(7, 1, 0.25, n, buffers.draw("m", n)), a1);
  assert.equal(buffers.draw("m", n).buffer, buffers.draw("m", n + 5).buffer, "the array is kept");
  // No structure along a row: neighbours are dropped together as often as chance says (p² = 1/16).
  let both = 0;
  for (let i = 0; i + 1 < n; i++) if (a1[i] === 0 && a1[i + 1] === 0) both++;
  assert.ok(Math.abs(both / (n - 1) - 1 / 16) < 0.005, `adjacent pairs dropped together: ${both / (n - 1)}`);
});

test("dropout in the graph: x·keep/(1-p), and the gradient goes through the same mask", async () => {
  const g = new Graph();
  const x = g.input("x", "float32", ["batch", "seq", 8]);
  const dropout = new DropoutInputs(g, g.input("rate", "float32", []));
  // drop(x)·Iᵀ = drop(x): the dropout as the LoRA branch applies it, before A.
  const identity = g.input("I", "float32", [8, 8]);
  const dropped = dropout.project(x, identity);
  const [dDropped] = grad(dropped, [x], g.input("dy", "float32", ["batch", "seq", 8]));
  g.output(dropped, "y");
  g.output(dDropped!, "dx");
  assert.deepEqual(
    dropout.masks.map((m) => [m.index, m.features]),
    [[1, 8]],
  );
  const s = await Session.create(emitModel(g));
  const xs = Float32Array.from({ length: 2 * 3 * 8 }, (_, i) => i + 1);
  const run = async (rate: number) => {
    const feeds = maskFeeds(dropout.masks, 2, 3, { rate, seed: 5 }, new MaskBuffers());
    const out = await s.run({
      ...feeds,
      x: { dtype: "float32", dims: [2, 3, 8], data: xs },
      dy: { dtype: "float32", dims: [2, 3, 8], data: new Float32Array(48).fill(1) },
      rate: { dtype: "float32", dims: [], data: Float32Array.of(rate) },
      I: {
        dtype: "float32",
        dims: [8, 8],
        data: Float32Array.from({ length: 64 }, (_, k) => (k % 9 === 0 ? 1 : 0)),
      },
    });
    return {
      keep: feeds[dropout.masks[0]!.name]!.data as Uint8Array,
      y: out["y"]!.data as Float32Array,
      dx: out["dx"]!.data as Float32Array,
    };
  };
  const { keep, y, dx } = await run(0.5);
  assert.ok(keep.includes(0) && keep.includes(1));
  for (let i = 0; i < 48; i++) {
    assert.ok(Math.abs(y[i]! - xs[i]! * keep[i]! * 2) < 1e-5, `y[${i}]`);
    assert.equal(dx[i], keep[i]! * 2, `dx[${i}]`);
  }
  const none = await run(0);
  assert.deepEqual(Array.from(none.y), Array.from(xs));
  await s.release();
});

test("project: drop(x)·Aᵀ, d x and d A equal the unfused drop then product, and d A reads x through a gate on dh", async () => {
  const build = (fused: boolean) => {
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", "seq", 8]);
    const A = g.input("A", "float32", [3, 8]);
    const dh = g.input("dh", "float32", ["batch", "seq", 3]);
    const rate = g.input("rate", "float32", []);
    const dropout = new DropoutInputs(g, rate);
    let h: Value;
    if (fused) h = dropout.project(x, A);
    else {
      // The reference: x ⊙ keep / (1 − p) then the product, differentiated by the ordinary rules.
      const keep = g.input(dropoutMaskName(1), "uint8", ["batch", "seq", 8]);
      dropout.masks.push({ name: keep.name!, index: 1, features: 8 });
      const factor = o.mul(o.cast(keep, "float32"), o.div(o.scalar(g, 1), o.sub(1, rate)));
      h = nn.linear(o.mul(x, factor), A);
    }
    const [dx, dA] = grad(h, [x, A], dh);
    g.output(h, "h");
    g.output(dx!, "dx");
    g.output(dA!, "dA");
    return { g, dropout };
  };
  const r = new Rng(3);
  const rand = (n: number) => Float32Array.from({ length: n }, () => (r.next() / 2 ** 32) * 2 - 1);
  const feedsBase = {
    x: tensor("float32", [2, 5, 8], rand(80)),
    A: tensor("float32", [3, 8], rand(24)),
    dh: tensor("float32", [2, 5, 3], rand(30)),
    rate: tensor("float32", [], Float32Array.of(0.3)),
  };
  const outs = [];
  for (const fused of [false, true]) {
    const { g, dropout } = build(fused);
    if (fused) {
      // The product with A in the backward pass reads x through Reshape(x, Shape(x) + flag(dh)).
      const reshapes = g.nodes.filter((n) => n.op === "Reshape" && n.inputs[0]?.name === "x");
      assert.ok(reshapes.length > 0, "x is read through a gated Reshape");
    }
    const s = await Session.create(emitModel(g));
    const masks = maskFeeds(dropout.masks, 2, 5, { rate: 0.3, seed: 9 }, new MaskBuffers());
    outs.push(await s.run({ ...feedsBase, ...masks }));
  }
  for (const k of ["h", "dx", "dA"]) {
    const [a, b] = outs.map((o) => o[k]!.data as Float32Array);
    a!.forEach((v, i) => {
      assert.ok(Math.abs(v - b![i]!) <= 1e-6 * (1 + Math.abs(v)), `${k}[${i}]: ${v} vs ${b![i]}`);
    });
  }
  assert.ok(
    (outs[1]!["dx"]!.data as Float32Array).some((v) => v === 0),
    "dropped elements get no gradient",
  );
});

/** LoRA dropout masks: the right rate and scale, independent per module, reproducible per seed. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { emitModel } from "../../src/graph/emit.js";
import { Graph } from "../../src/graph/ir.js";
import { Session } from "../../src/graph/runtime.js";
import { dropoutMasks } from "../../src/lora/inject.js";

test("dropout masks: rate, 1/(1-p) scale, per-module independence, same seed same mask, p = 0 keeps all", async () => {
  const g = new Graph();
  const x = g.input("x", "float32", ["rows", 512]);
  const seed = g.input("seed", "int64", []);
  const rate = g.input("rate", "float32", []);
  const mask = dropoutMasks(seed, rate);
  g.output(mask(x, 1), "m1");
  g.output(mask(x, 2), "m2");
  const s = await Session.create(emitModel(g));
  const run = async (sd: number, p: number) => {
    const out = await s.run({
      x: { dtype: "float32", dims: [64, 512], data: new Float32Array(64 * 512) },
      seed: { dtype: "int64", dims: [], data: BigInt64Array.of(BigInt(sd)) },
      rate: { dtype: "float32", dims: [], data: Float32Array.of(p) },
    });
    return [out["m1"]!.data as Float32Array, out["m2"]!.data as Float32Array] as const;
  };
  const [a1, a2] = await run(7, 0.25);
  const dropped = a1.filter((v) => v === 0).length / a1.length;
  assert.ok(Math.abs(dropped - 0.25) < 0.01, `dropped fraction ${dropped}`);
  assert.ok(a1.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6));
  const same = a1.filter((v, i) => (v === 0) === (a2[i] === 0)).length / a1.length;
  assert.ok(same < 0.7, `modules' masks agree on ${same} of the elements (independent: ~0.625)`);
  assert.deepEqual((await run(7, 0.25))[0], a1);
  assert.notDeepEqual((await run(8, 0.25))[0], a1);
  assert.ok((await run(7, 0))[0].every((v) => v === 1));
  await s.release();
});

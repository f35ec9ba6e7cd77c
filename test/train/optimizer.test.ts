import assert from "node:assert/strict";
import { test } from "node:test";
import { AdamW, clipGradNorm, GradAccumulator, globalGradNorm } from "../../src/train/optimizer.js";
import { Rng } from "../../src/util/rng.js";
import { needsTorch, runPython } from "../helpers/torch.js";

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = ""): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i]! - expected[i]!) <= tol,
      `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`,
    );
  }
}

test("AdamW matches a hand-computed two-step update (decoupled decay, bias correction)", () => {
  // lr 0.1, β1 0.9, β2 0.999, ε 1e-8, λ 0.01; θ0 = [1, -2]; g1 = [0.5, -0.1]; g2 = [-0.3, 0.2].
  // Step 1: θ·(1 − 0.001) = [0.999, -1.998]; m = 0.1·g1 = [0.05, -0.01]; v = 0.001·g1² = [2.5e-4, 1e-5];
  //   m̂ = m/0.1 = g1, √v̂ = √(v/0.001) = |g1| → θ −= 0.1·sign(g1)  (up to ε)  → θ1 = [0.899, -1.898].
  // Step 2: θ·0.999 = [0.898101, -1.896102]; m = 0.9·m + 0.1·g2 = [0.015, 0.011];
  //   v = 0.999·v + 0.001·g2² = [3.3975e-4, 4.999e-5]; 1 − β1² = 0.19, 1 − β2² = 0.001999;
  //   θ −= 0.1·(m/0.19) / (√(v/0.001999) + ε) = [0.0191498011, 0.0366103604]
  //   → θ2 = [0.8789511989, -1.9327123604].
  const theta = Float32Array.from([1, -2]);
  const opt = new AdamW([theta], { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  opt.update([theta], [Float32Array.from([0.5, -0.1])]);
  close(theta, [0.899000002, -1.89800001], 1e-6, "θ1");
  opt.update([theta], [Float32Array.from([-0.3, 0.2])]);
  close(theta, [0.8789511989, -1.9327123604], 1e-6, "θ2");
  assert.equal(opt.step, 2);
  const s = opt.state();
  close(s.m[0]!, [0.015, 0.011], 1e-8, "m");
  close(s.v[0]!, [3.3975e-4, 4.999e-5], 1e-10, "v");
});

test("AdamW: per-step lr override, per-parameter weight decay, zero gradient only decays", () => {
  const a = Float32Array.from([2]);
  const b = Float32Array.from([2]);
  const opt = new AdamW([a, b], { lr: 1, weightDecay: 0.5 }, [0.5, 0]);
  opt.update([a, b], [new Float32Array(1), new Float32Array(1)], 0.1);
  close(a, [2 * (1 - 0.1 * 0.5)], 1e-7, "decayed");
  close(b, [2], 0, "not decayed");
  assert.throws(() => opt.update([a], [new Float32Array(1)]), /expected 2 parameters/);
  assert.throws(() => new AdamW([1], { lr: 1, beta2: 1 }), /beta2 must be in \[0, 1\)/);
});

test("AdamW state round trip: saved after k steps and loaded into a new optimizer, the run continues identically", () => {
  const rng = new Rng(5);
  const sizes = [7, 3];
  const grads = Array.from({ length: 6 }, () => sizes.map((n) => rng.fillNormal(new Float32Array(n))));
  const init = () => sizes.map((n, p) => Float32Array.from({ length: n }, (_v, i) => (i - p) / 4));
  const full = init();
  const o1 = new AdamW(full, { lr: 0.01 });
  for (const g of grads) o1.update(full, g);

  const part = init();
  const o2 = new AdamW(part, { lr: 0.01 });
  for (const g of grads.slice(0, 3)) o2.update(part, g);
  const saved = o2.state();
  const o3 = new AdamW(sizes, { lr: 0.01 });
  o3.loadState(saved);
  assert.equal(o3.step, 3);
  for (const g of grads.slice(3)) o3.update(part, g);
  assert.deepEqual(part, full);
  assert.throws(() => new AdamW([7], { lr: 1 }).loadState(saved), /2 parameters, the optimizer 1/);
});

test("clipGradNorm: global L2 norm, scaled by maxNorm / (norm + 1e-6) only when above", () => {
  const g = [Float32Array.from([3, 0]), Float32Array.from([4])];
  assert.equal(globalGradNorm(g), 5);
  assert.equal(clipGradNorm(g, 10), 5);
  close(g[0]!, [3, 0], 0);
  assert.equal(clipGradNorm(g, 1), 5);
  const c = 1 / (5 + 1e-6);
  close(g[0]!, [3 * c, 0], 1e-7);
  close(g[1]!, [4 * c], 1e-7);
  close([globalGradNorm(g)], [1], 1e-6);
  const bad = [Float32Array.from([Number.NaN, 1])];
  assert.ok(Number.isNaN(clipGradNorm(bad, 1)));
});

test("GradAccumulator sums micro-batch gradients and scales by 1/K", () => {
  const acc = new GradAccumulator([2, 1]);
  acc.add([Float32Array.from([1, 2]), Float32Array.from([3])]);
  acc.add([Float32Array.from([3, -2]), Float32Array.from([1])]);
  assert.equal(acc.count, 2);
  const m = acc.mean();
  close(m[0]!, [2, 0], 0);
  close(m[1]!, [2], 0);
  acc.reset();
  assert.equal(acc.count, 0);
  acc.add([Float32Array.from([5, 5]), Float32Array.from([5])]);
  close(acc.mean()[0]!, [5, 5], 0);
  assert.throws(() => acc.add([Float32Array.from([1])]), /1 gradients, expected 2/);
});

test("AdamW agrees with torch.optim.AdamW over 5 steps", { skip: needsTorch }, () => {
  const rng = new Rng(11);
  const n = 16;
  const theta0 = rng.fillNormal(new Float32Array(n)) as Float32Array;
  const grads = Array.from({ length: 5 }, () => rng.fillNormal(new Float32Array(n)));
  const cfg = { lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 };
  const script = `
import json, sys, torch
d = json.load(sys.stdin)
p = torch.nn.Parameter(torch.tensor(d["theta"], dtype=torch.float32))
o = torch.optim.AdamW([p], lr=d["lr"], betas=(d["beta1"], d["beta2"]), eps=d["eps"], weight_decay=d["weightDecay"], foreach=False)
for g in d["grads"]:
    p.grad = torch.tensor(g, dtype=torch.float32)
    o.step()
print(json.dumps(p.detach().tolist()))
`;
  const input = JSON.stringify({ theta: Array.from(theta0), grads: grads.map((g) => Array.from(g)), ...cfg });
  const expected = JSON.parse(runPython(["-c", script], input)) as number[];
  const theta = theta0.slice();
  const opt = new AdamW([theta], cfg);
  for (const g of grads) opt.update([theta], [g]);
  close(theta, expected, 1e-5, "θ vs torch");
});

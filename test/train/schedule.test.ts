import assert from "node:assert/strict";
import { test } from "node:test";
import { learningRate, lrMultiplier, type ScheduleOptions } from "../../src/train/schedule.js";

function at(o: ScheduleOptions, steps: number[]): number[] {
  return steps.map((s) => lrMultiplier(o, s));
}

function close(a: number[], b: number[]): void {
  a.forEach((x, i) => {
    assert.ok(Math.abs(x - b[i]!) < 1e-12, `[${i}] ${x} vs ${b[i]}`);
  });
}

// Expected values from HF transformers' formulas (optimization.py), written out by hand:
//   warmup: s / W;  linear: (T − s)/(T − W);  cosine: ½(1 + cos(π·(s − W)/(T − W)))
test("constant with warmup (get_constant_schedule_with_warmup)", () => {
  close(at({ kind: "constant", lr: 1, warmupSteps: 10 }, [0, 3, 9, 10, 500]), [0, 0.3, 0.9, 1, 1]);
  close(at({ kind: "constant", lr: 1 }, [0, 7]), [1, 1]);
});

test("linear with warmup (get_linear_schedule_with_warmup)", () => {
  const o: ScheduleOptions = { kind: "linear", lr: 2e-4, warmupSteps: 10, totalSteps: 100 };
  close(at(o, [0, 5, 10, 55, 91, 100, 120]), [0, 0.5, 1, 0.5, 0.1, 0, 0]);
  assert.ok(Math.abs(learningRate(o, 55) - 1e-4) < 1e-18);
  close(at({ kind: "linear", lr: 1, totalSteps: 4 }, [0, 1, 4]), [1, 0.75, 0]);
});

test("cosine with warmup (get_cosine_schedule_with_warmup, num_cycles 0.5)", () => {
  const o: ScheduleOptions = { kind: "cosine", lr: 1, warmupSteps: 10, totalSteps: 100 };
  // s = 28: progress 0.2 → ½(1 + cos 0.2π) = 0.9045084971874737; s = 82: progress 0.8 → 0.0954915028125263
  close(
    at(o, [0, 4, 10, 28, 55, 82, 100, 145]),
    [0, 0.4, 1, 0.9045084971874737, 0.5, 0.0954915028125263, 0, 0.5],
  );
  // HF clamps with max(0, ·) only; past T the half-cosine rises again (s = 145: progress 1.5 → 0.5), as HF.
  assert.throws(() => lrMultiplier({ kind: "cosine", lr: 1 }, 3), /needs totalSteps/);
});

/**
 * Training with the frozen linear weights in int8 (--base-int8) follows the float32 loss curve: on the
 * shipped default model and persona data (a real trained model, not random weights), every step's
 * loss and the final validation loss stay within tolerance of the float32 run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_MODEL_DIR, DEMO_TRAINING } from "../../src/cli/demo.js";
import type { EvalMetrics, StepMetrics } from "../../src/train/events.js";
import { train } from "../../src/train/trainer.js";
import { tempDir } from "../models/fixtures.js";

const STEPS = 30;

async function curve(baseInt8: boolean) {
  const losses: number[] = [];
  const evals: number[] = [];
  await train(
    {
      ...DEMO_TRAINING,
      model: DEFAULT_MODEL_DIR,
      data: join(DEFAULT_MODEL_DIR, "data/persona.jsonl"),
      valData: join(DEFAULT_MODEL_DIR, "data/persona-heldout.jsonl"),
      out: tempDir(),
      maxSteps: STEPS,
      evalEvery: STEPS,
      baseInt8,
    },
    [{ onStep: (m: StepMetrics) => losses.push(m.loss), onEval: (m: EvalMetrics) => evals.push(m.loss) }],
  );
  return { losses, evals };
}

test(`int8 base weights: ${STEPS} steps within 2% of float32, final validation loss within 1%`, async (t) => {
  const exact = await curve(false);
  const int8 = await curve(true);
  assert.equal(int8.losses.length, STEPS);
  assert.ok(exact.losses.at(-1)! < 0.5 * exact.losses[0]!, "training works at all");
  let worst = 0;
  for (const [i, l] of int8.losses.entries()) {
    const rel = Math.abs(l - exact.losses[i]!) / exact.losses[i]!;
    worst = Math.max(worst, rel);
    assert.ok(rel < 0.02, `step ${i + 1}: int8 ${l} vs float32 ${exact.losses[i]}`);
  }
  assert.ok(worst > 0, "the int8 path is a different computation");
  const [v32, v8] = [exact.evals.at(-1)!, int8.evals.at(-1)!];
  t.diagnostic(`worst step difference ${(100 * worst).toFixed(2)}%; validation ${v32} vs ${v8}`);
  assert.ok(Math.abs(v8 - v32) / v32 < 0.01, `validation loss: int8 ${v8} vs float32 ${v32}`);
});

test("--base-int8 is refused with --mode full (there are no frozen weights)", async () => {
  await assert.rejects(
    train({
      model: DEFAULT_MODEL_DIR,
      data: join(DEFAULT_MODEL_DIR, "data/persona.jsonl"),
      out: tempDir(),
      mode: "full",
      baseInt8: true,
    }),
    /--base-int8 .*--mode full/,
  );
});

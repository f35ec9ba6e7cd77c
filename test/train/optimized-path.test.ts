/**
 * The optimized training path (fused LM head + cross-entropy with its hand-written backward, and the
 * session settings of TRAIN_SESSION_DEFAULTS) follows the plain path's loss curve.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { StepMetrics } from "../../src/train/events.js";
import { train } from "../../src/train/trainer.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

test("the optimized path's loss curve matches the plain path within 1e-5 over 10 steps", async () => {
  const model = tinyModel("llama", 9, { num_key_value_heads: 2 });
  const data = wordData(16);

  const curve = async (plainPath: boolean) => {
    const losses: number[] = [];
    await train(
      {
        model,
        data,
        out: tempDir(),
        targets: "all-linear",
        r: 4,
        dropout: 0.1,
        lr: 1e-2,
        maxSteps: 10,
        batchSize: 4,
        seed: 3,
        plainPath,
      },
      [{ onStep: (m: StepMetrics) => losses.push(m.loss) }],
    );
    return losses;
  };
  const optimized = await curve(false);
  const plain = await curve(true);
  assert.equal(optimized.length, 10);
  assert.ok(optimized[9]! < optimized[0]!, "the loss goes down");
  for (const [i, l] of optimized.entries())
    assert.ok(Math.abs(l - plain[i]!) < 1e-5, `step ${i + 1}: ${l} vs ${plain[i]}`);
});

/**
 * The optimized training path (fused LM head + cross-entropy with its hand-written backward, and the
 * session settings of TRAIN_SESSION_DEFAULTS) follows the plain path's loss curve.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseModelConfig } from "../../src/models/config.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import type { StepMetrics } from "../../src/train/events.js";
import { train } from "../../src/train/trainer.js";
import { toyTokenizer, WORDS } from "../data/toy-tokenizer.js";
import { llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";

test("the optimized path's loss curve matches the plain path within 1e-5 over 10 steps", async () => {
  const tok = toyTokenizer();
  const cfg = llamaConfig({ vocab_size: tok.vocabSize, num_key_value_heads: 2 });
  const model = writeModelDir(
    tempDir(),
    cfg,
    randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), 9),
  );
  writeFileSync(join(model, "tokenizer.json"), JSON.stringify(tok.tokenizerJson));
  writeFileSync(join(model, "tokenizer_config.json"), JSON.stringify(tok.tokenizerConfig));
  const data = join(tempDir(), "data.jsonl");
  writeFileSync(
    data,
    Array.from({ length: 16 }, (_, i) =>
      JSON.stringify({ text: WORDS.slice(i % 9, (i % 9) + 10).join(" ") }),
    ).join("\n"),
  );

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

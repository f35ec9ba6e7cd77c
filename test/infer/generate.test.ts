/** Generation: the key/value cache path equals full recomputation token for token; batching is exact. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { generate } from "../../src/infer/generate.js";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { argmax, sampleToken } from "../../src/infer/sampling.js";
import { parseModelConfig } from "../../src/models/family.js";
import { gpt2TensorShapes } from "../../src/models/gpt2.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { Rng } from "../../src/util/rng.js";
import { needsShared } from "../helpers/shared.js";
import { stories260K } from "../helpers/stories.js";
import { gpt2Config, llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";

function randomLlama(): string {
  const cfg = llamaConfig({ num_key_value_heads: 2, vocab_size: 64 });
  return writeModelDir(
    tempDir(),
    cfg,
    randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), 5),
  );
}

function randomGpt2(): string {
  const cfg = gpt2Config();
  const shapes = gpt2TensorShapes(parseModelConfig(cfg, "config.json"));
  shapes.delete("lm_head.weight"); // tied
  return writeModelDir(tempDir(), cfg, randomWeights(shapes, 6));
}

for (const [name, make] of [
  ["Llama (GQA)", randomLlama],
  ["GPT-2", randomGpt2],
] as const) {
  test(`${name}: KV-cache generation equals full recomputation, greedy and sampled`, async () => {
    const lm = await loadCausalLM(make());
    const prompt = [[3, 17, 5, 9]];
    for (const temperature of [0, 1.0]) {
      const run = (noCache: boolean) => {
        const rng = new Rng(42);
        return generate(lm, prompt, {
          maxNewTokens: 30,
          temperature,
          topK: 20,
          topP: 0.9,
          eosIds: [],
          noCache,
          random: () => rng.float(),
        });
      };
      const cached = await run(false);
      const full = await run(true);
      assert.equal(cached[0]!.length, 30);
      assert.deepEqual(cached, full);
    }
    await lm.release();
  });
}

test("batched generation with left padding equals one prompt at a time", async () => {
  const lm = await loadCausalLM(randomLlama());
  const prompts = [[5, 6, 7, 8, 9], [11], [20, 21, 22]];
  const together = await generate(lm, prompts, { maxNewTokens: 12, eosIds: [] });
  for (const [i, p] of prompts.entries()) {
    assert.deepEqual(together[i], (await generate(lm, [p], { maxNewTokens: 12, eosIds: [] }))[0], `row ${i}`);
  }
  await lm.release();
});

test("generation stops at eos and includes it", async () => {
  const lm = await loadCausalLM(randomLlama());
  const free = (await generate(lm, [[1, 2, 3]], { maxNewTokens: 10, eosIds: [] }))[0]!;
  const stopAt = free[3]!;
  const stopped = (await generate(lm, [[1, 2, 3]], { maxNewTokens: 10, eosIds: [stopAt] }))[0]!;
  assert.deepEqual(stopped, free.slice(0, free.indexOf(stopAt) + 1));
  await lm.release();
});

test("sampling: greedy is the arg-max, top-k 1 is greedy, a seed reproduces draws", () => {
  const row = [0.1, 2.5, -1, 2.5, 0.3];
  assert.equal(argmax(row), 1);
  assert.equal(sampleToken(row, {}, Math.random), 1);
  // top-k 1 is greedy when the best logit is unique (tied best tokens both stay, as in Hugging Face).
  assert.equal(sampleToken([0.1, 2.5, -1, 2.4, 0.3], { temperature: 5, topK: 1 }, Math.random), 1);
  const draw = (seed: number) => {
    const r = new Rng(seed);
    return Array.from({ length: 50 }, () => sampleToken(row, { temperature: 1.5 }, () => r.float()));
  };
  assert.deepEqual(draw(1), draw(1));
  assert.notDeepEqual(draw(1), draw(2));
  // top-p 0.5 keeps only the two tied best tokens.
  const r = new Rng(3);
  const picks = new Set(
    Array.from({ length: 200 }, () => sampleToken(row, { temperature: 1, topP: 0.5 }, () => r.float())),
  );
  assert.deepEqual([...picks].sort(), [1, 3]);
});

test("stories260K: cached and recomputed greedy generation agree for 100 tokens", {
  skip: needsShared("models/stories260K/stories260K.bin"),
}, async () => {
  const dir = await stories260K();
  const lm = await loadCausalLM(dir);
  const a = await generate(lm, [[1]], { maxNewTokens: 100, eosIds: [] });
  const b = await generate(lm, [[1]], { maxNewTokens: 100, eosIds: [], noCache: true });
  assert.deepEqual(a, b);
  await lm.release();
});

/**
 * The cross-entropy VALUE that `eval` prints and a training step returns, against a computation written
 * here from the model's `logits` output (CausalLM.logits, what `lora-ts logits` prints): one unpadded
 * sequence at a time, position t scored against token t+1 where that label is not -100, the
 * negative log-softmax taken in float64, and the mean over every scored token.
 *
 * So a loss that shifted the labels the wrong way, averaged over all positions instead of the scored
 * ones, let padding or prompt tokens in, or weighted batches instead of tokens would differ.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { padBatch, padIdOf } from "../../src/data/batching.js";
import { readDataset } from "../../src/data/dataset-file.js";
import { buildExamples, type Example } from "../../src/data/examples.js";
import { readTokenizer } from "../../src/data/tokenizer-files.js";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { createAdapter } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { evaluate } from "../../src/train/evaluate.js";
import { buildTrainStep, shiftLabels } from "../../src/train/train-graph.js";
import { WORDS } from "../data/toy-tokenizer.js";
import { randn, rng } from "../graph/gradcheck.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

/** Prompt/completion rows of different lengths, so batches are padded and prompts are unscored. */
function promptCompletionData(): string {
  const words = (i: number, n: number) =>
    Array.from({ length: n }, (_, k) => WORDS[(i * 5 + k * 3) % WORDS.length]).join(" ");
  const rows = Array.from({ length: 7 }, (_, i) =>
    JSON.stringify({ prompt: `${words(i, 2 + (i % 3))} `, completion: words(i + 11, 1 + ((i * 2) % 5)) }),
  );
  const path = join(tempDir(), "pc.jsonl");
  writeFileSync(path, `${rows.join("\n")}\n`);
  return path;
}

/** Σ over scored positions of −log softmax(logits[t])[label[t+1]], in float64, and their count. */
function referenceLoss(logits: Float32Array[], labels: readonly number[]): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (let t = 0; t + 1 < labels.length; t++) {
    const label = labels[t + 1]!;
    if (label === -100) continue;
    const row = logits[t]!;
    const max = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - max);
    sum += max + Math.log(z) - row[label]!;
    count++;
  }
  return { sum, count };
}

test("cross-entropy value: eval and a padded training step equal the mean over scored tokens computed from logits", async () => {
  const model = tinyModel("llama", 9, { num_key_value_heads: 2 });
  const data = promptCompletionData();
  const tok = readTokenizer(model);
  const { examples } = buildExamples(readDataset(data), tok, { maxLength: 64 });
  assert.equal(examples.length, 7);
  const lengths = new Set(examples.map((e) => e.inputIds.length));
  assert.ok(lengths.size > 1, "rows of different lengths, so batches are padded");
  assert.ok(
    examples.every((e) => e.labels[1] === -100),
    "prompt tokens are unscored (a completion-only loss)",
  );

  // An adapter with non-zero B, so eval's adapter path is part of what is checked.
  const hf = openModelDir(model);
  const config = makeLoraConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj", "v_proj", "down_proj"] });
  const selected = selectTargets(config, listModules(hf.config));
  const { adapter } = createAdapter(config, selected, { seed: 3 });
  const rand = rng(4);
  for (const [key, t] of adapter.tensors) {
    if (key.includes("lora_B")) t.data.set(randn(rand, t.data.length).map((v) => 0.3 * v));
  }
  const adapterDir = join(tempDir(), "adapter");
  saveAdapter(adapterDir, adapter);

  const lm = await loadCausalLM(model, { adapters: [{ name: "a", dir: adapterDir }] });
  const refs: { sum: number; count: number }[] = [];
  const baseRefs: { sum: number; count: number }[] = [];
  for (const e of examples) {
    refs.push(referenceLoss(await lm.logits(e.inputIds, lm.adapterFeeds("a")), e.labels));
    baseRefs.push(referenceLoss(await lm.logits(e.inputIds, lm.adapterFeeds(null)), e.labels));
  }
  await lm.release();
  const mean = (rs: { sum: number; count: number }[]) =>
    rs.reduce((a, r) => a + r.sum, 0) / rs.reduce((a, r) => a + r.count, 0);
  const tokens = refs.reduce((a, r) => a + r.count, 0);
  assert.ok(Math.abs(mean(refs) - mean(baseRefs)) > 1e-2, "the adapter changes the loss");

  // eval: token-weighted over batches of 3 (7 rows: the last batch has one row).
  for (const [adapterPath, rs] of [
    [adapterDir, refs],
    [undefined, baseRefs],
  ] as const) {
    const ev = await evaluate({ model, adapter: adapterPath, data, batchSize: 3 });
    assert.equal(ev.tokens, tokens, "eval scores exactly the completion tokens");
    const want = mean(rs);
    assert.ok(Math.abs(ev.loss - want) <= 1e-5 * want, `eval ${ev.loss} vs reference ${want}`);
    assert.ok(Math.abs(ev.perplexity - Math.exp(want)) <= 1e-4 * Math.exp(want));
  }

  // One training step on a right-padded batch of the first three rows (dropout 0).
  const step = await buildTrainStep(hf, { mode: "lora", selected, dropout: 0 });
  const values = step.params.map((p) => adapter.tensors.get(p.name)!.data);
  const stepLoss = async (rows: readonly Example[], padId: number) => {
    const b = padBatch(rows, padId);
    return (
      await step.run({ ...b, targets: shiftLabels(b.labels, b.batch, b.seq) }, values, { train: false })
    ).loss;
  };
  const three = examples.slice(0, 3);
  assert.ok(new Set(three.map((e) => e.inputIds.length)).size > 1, "the batch is padded");
  const want = mean(refs.slice(0, 3));
  const got = await stepLoss(three, padIdOf(tok));
  assert.ok(Math.abs(got - want) <= 1e-5 * want, `train step ${got} vs reference ${want}`);
  // Padding is ignored whatever id it holds.
  assert.equal(await stepLoss(three, 7), got);
  await step.release();
  hf.weights.close();
});

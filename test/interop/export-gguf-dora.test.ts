/**
 * `lora-ts export gguf` of a DoRA adapter checked by llama.cpp itself (node-llama-cpp,
 * test/interop/llama-cpp.ts): llama.cpp has no DoRA, so the export merges (m / n) ⊙ (W + s·B·A),
 * and llama.cpp's greedy ids on that file equal lora-ts's, both with the adapter applied unmerged
 * (`generate --adapter`) and on the model `lora-ts merge` writes. For stories260K (GQA; the merged q
 * and k rows are permuted like any base weight) and a random GPT-2 (Conv1D, whose factor scales
 * columns, and biases the factor must leave alone). Skipped with a message when node-llama-cpp is
 * absent; `export gguf-adapter`'s refusal of DoRA is in test/lora/dora-merge.test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { writeRandomAdapter } from "../helpers/random-adapter.js";
import { needsShared, sharedPath } from "../helpers/shared.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";
import { LLAMA_CPP, llamaGreedy } from "./llama-cpp.js";

const N = 48;

function cli(args: string[]): string {
  const r = runCli(args);
  assert.equal(r.code, 0, `lora-ts ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function loraTsGreedy(model: string, adapter: string | null, prompt: number[]): number[] {
  const args = [
    "generate",
    "--model",
    model,
    "--prompt-ids",
    prompt.join(","),
    "--max-new-tokens",
    String(N),
  ];
  if (adapter) args.push("--adapter", adapter);
  return (JSON.parse(cli([...args, "--json"])) as { ids: number[] }).ids;
}

/** A DoRA adapter exported merged: llama.cpp = lora-ts unmerged = lora-ts on `merge`'s output. */
async function sameGreedy(model: string, adapter: string, prompt: number[]): Promise<void> {
  const dir = tempDir("lora-ts-interop-dora-");
  const gguf = join(dir, "model.gguf");
  const merged = join(dir, "merged");
  cli(["export", "gguf", "--model", model, "--adapter", adapter, "--out", gguf]);
  cli(["merge", "--model", model, "--adapter", adapter, "--out", merged, "--dtype", "f32"]);
  const want = loraTsGreedy(model, adapter, prompt);
  assert.equal(want.length, N, "lora-ts generated fewer tokens than asked (EOS?)");
  assert.deepEqual(loraTsGreedy(merged, null, prompt), want, "lora-ts: merged vs unmerged");
  assert.notDeepEqual(loraTsGreedy(model, null, prompt), want, "the adapter does not change the greedy ids");
  assert.deepEqual(await llamaGreedy(gguf, prompt, N), want, "llama.cpp on the merged export");
}

test("stories260K, DoRA adapter on q,k,v,o + MLP exported merged: llama.cpp's greedy ids = lora-ts's (unmerged and merged)", {
  skip: LLAMA_CPP || needsShared("models/stories260K/stories260K.gguf"),
}, async () => {
  const model = join(tempDir("lora-ts-interop-dora-"), "stories");
  cli(["convert", "gguf", "--model", sharedPath("models/stories260K/stories260K.gguf"), "--out", model]);
  const adapter = join(tempDir("lora-ts-interop-dora-"), "adapter");
  writeRandomAdapter(model, adapter, {
    seed: 3,
    r: 4,
    lora_alpha: 8,
    use_dora: true,
    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    scale: 0.05,
  });
  await sameGreedy(model, adapter, [1]);
});

test("random GPT-2, DoRA adapter on c_attn, c_proj, c_fc exported merged: same greedy ids", {
  skip: LLAMA_CPP,
}, async () => {
  const model = tinyModel("gpt2", 11, { n_positions: 128 });
  const adapter = join(tempDir("lora-ts-interop-dora-"), "adapter");
  writeRandomAdapter(model, adapter, {
    seed: 2,
    r: 4,
    lora_alpha: 4,
    use_dora: true,
    target_modules: ["c_attn", "c_proj", "c_fc"],
    scale: 0.1,
  });
  await sameGreedy(model, adapter, [1, 20, 30]);
});

/**
 * `lora-ts export gguf-adapter` checked by llama.cpp (node-llama-cpp): the base exported by
 * `export gguf` plus the adapter GGUF at scale 1 gives the greedy ids of `lora-ts generate --adapter`,
 * for an adapter on q,k,v,o + MLP (stories260K: GQA, so k's rows are permuted over its 4 kv heads),
 * an rsLoRA one, and one with rank and alpha patterns (the per-module scales folded into B); what a
 * GGUF adapter cannot hold is one line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { needsShared, REPO_ROOT, sharedPath } from "../helpers/shared.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";
import { type AdapterSpec, randomAdapter } from "./fixtures.js";
import { LLAMA_CPP, llamaGreedy } from "./llama-cpp.js";

const DEFAULT_MODEL = join(REPO_ROOT, "models/default");
const N = 64;
const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

function cli(args: string[]): string {
  const r = runCli(args);
  assert.equal(r.code, 0, `lora-ts ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Base GGUF + adapter GGUF in llama.cpp at scale 1 vs lora-ts generate --adapter. */
async function sameGreedy(model: string, spec: AdapterSpec, prompt: number[]): Promise<void> {
  const adapter = randomAdapter(model, spec);
  const dir = tempDir("lora-ts-interop-adapter-");
  const base = join(dir, "model.gguf");
  const lora = join(dir, "adapter.gguf");
  cli(["export", "gguf", "--model", model, "--out", base]);
  cli(["export", "gguf-adapter", "--model", model, "--adapter", adapter, "--out", lora]);
  const gen = ["generate", "--model", model, "--adapter", adapter, "--prompt-ids", prompt.join(",")];
  const want = (JSON.parse(cli([...gen, "--max-new-tokens", String(N), "--json"])) as { ids: number[] }).ids;
  assert.equal(want.length, N);
  // The adapter must matter, or the comparison proves nothing about it.
  const plain = await llamaGreedy(base, prompt, N);
  assert.notDeepEqual(plain, want, "the adapter does not change the greedy ids");
  assert.deepEqual(await llamaGreedy(base, prompt, N, [{ filePath: lora, scale: 1 }]), want);
}

let stories: string | undefined;
function storiesDir(): string {
  if (stories) return stories;
  stories = join(tempDir("lora-ts-interop-"), "stories");
  cli(["convert", "gguf", "--model", sharedPath("models/stories260K/stories260K.gguf"), "--out", stories]);
  return stories;
}
const STORIES = needsShared("models/stories260K/stories260K.gguf");

test("stories260K (GQA), adapter on q,k,v,o + MLP: base + adapter GGUF in llama.cpp = lora-ts generate --adapter", {
  skip: LLAMA_CPP || STORIES,
}, async () => {
  await sameGreedy(storiesDir(), { targets: ALL, r: 4, alpha: 8, seed: 3, bScale: 0.05 }, [1]);
});

test("stories260K, rsLoRA (s = alpha/√r folded into B): same greedy ids", {
  skip: LLAMA_CPP || STORIES,
}, async () => {
  await sameGreedy(storiesDir(), { targets: ALL, r: 4, alpha: 4, rslora: true, seed: 6, bScale: 0.05 }, [1]);
});

test("default model, rank and alpha patterns (per-module r and alpha, one global alpha in GGUF): same greedy ids", {
  skip: LLAMA_CPP,
}, async () => {
  await sameGreedy(
    DEFAULT_MODEL,
    {
      targets: ALL,
      r: 8,
      alpha: 16,
      rankPattern: { q_proj: 4, "layers.1.mlp.down_proj": 2 },
      alphaPattern: { v_proj: 4, k_proj: 32 },
      seed: 7,
      bScale: 0.03,
    },
    [0, 100, 200],
  );
});

test("random GPT-2, adapter on the fused c_attn and the MLP: same greedy ids", {
  skip: LLAMA_CPP,
}, async () => {
  const model = tinyModel("gpt2", 13, { n_positions: 128 });
  await sameGreedy(
    model,
    { targets: ["c_attn", "c_fc", "c_proj"], r: 4, alpha: 8, seed: 2, bScale: 0.1 },
    [1, 20, 30],
  );
});

test("what a GGUF adapter cannot hold is one line: a LoRA on a tied model's head", () => {
  const model = tinyModel("llama", 3, { tie_word_embeddings: true });
  const adapter = randomAdapter(model, { targets: ["q_proj", "lm_head"], r: 2, alpha: 2, seed: 1 });
  const out = join(tempDir("lora-ts-interop-adapter-"), "adapter.gguf");
  const r = runCli(["export", "gguf-adapter", "--model", model, "--adapter", adapter, "--out", out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*lm_head of a tied model cannot be expressed in a GGUF adapter.*\n$/);
});

/**
 * `generate` and `logits` check their flags before any work and any output (issue #12 item 8): ids
 * outside the vocabulary are one line naming the flag (no onnxruntime log), --top-p must lie in (0, 1],
 * a bad flag leaves stdout empty (the prompt used to be echoed first), and --top-k/--top-p at
 * temperature 0 say that greedy decoding ignores them, as Hugging Face warns.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { tinyModel } from "../helpers/tiny-model.js";

const model = tinyModel("llama", 31);
const vocab = (JSON.parse(readFileSync(join(model, "config.json"), "utf8")) as { vocab_size: number })
  .vocab_size;

const generateCli = (m: string, ...args: string[]) => runCli(["generate", "--model", m, ...args]);

function fails(args: string[], line: string) {
  const r = runCli(args);
  assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
  assert.equal(r.stdout, "", `${args.join(" ")}: nothing on stdout`);
  assert.equal(r.stderr, `error: ${line}\n`);
}

test("logits and generate refuse ids outside the vocabulary with one line", () => {
  fails(
    ["logits", "--model", model, "--ids", `1,${vocab}`, "--json"],
    `--ids: id ${vocab} is outside the vocabulary (${vocab})`,
  );
  fails(
    ["generate", "--model", model, "--prompt-ids", `${vocab + 5}`],
    `--prompt-ids: id ${vocab + 5} is outside the vocabulary (${vocab})`,
  );
  const ok = runCli(["logits", "--model", model, "--ids", `1,${vocab - 1}`, "--json"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as { logits: number[][] }).logits.length, 2);
});

test("generate checks its flags before writing the prompt: --top-p in (0, 1], --max-new-tokens >= 1", () => {
  const gen = (...extra: string[]) => ["generate", "--model", model, "--prompt", "Once upon", ...extra];
  fails(gen("--temperature", "1", "--top-p", "1.5"), '--top-p: expected a number in (0, 1], got "1.5"');
  fails(gen("--temperature", "1", "--top-p", "0"), '--top-p: expected a number in (0, 1], got "0"');
  fails(gen("--max-new-tokens", "0"), '--max-new-tokens: expected an integer >= 1, got "0"');
  fails(gen("--seed", "x"), '--seed: expected an integer, got "x"');
  const r = runCli(gen("--temperature", "1", "--top-p", "1", "--max-new-tokens", "2"));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.startsWith("Once upon"));
});

test("--top-k / --top-p at temperature 0 warn that greedy decoding ignores them", () => {
  const greedy = generateCli(model, "--prompt-ids", "1,5", "--max-new-tokens", "3", "--json");
  const withK = generateCli(model, "--prompt-ids", "1,5", "--max-new-tokens", "3", "--top-k", "2", "--json");
  assert.equal(withK.code, 0, withK.stderr);
  assert.equal(withK.stderr, "warning: --top-k and --top-p have no effect at --temperature 0 (greedy)\n");
  assert.equal(greedy.stderr, "");
  assert.deepEqual(JSON.parse(withK.stdout), JSON.parse(greedy.stdout), "the same greedy ids");
});

test("prompt + --max-new-tokens beyond the context: GPT-2 (learned positions) stops there and refuses a full prompt; Llama (rotary) warns and goes on", () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => 3 + (i % 20)).join(",");
  const gpt2 = tinyModel("gpt2", 32, { n_positions: 16 });
  const r = generateCli(gpt2, "--prompt-ids", ids(14), "--max-new-tokens", "10", "--json");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stderr,
    "warning: prompt (14) + --max-new-tokens (10) exceed the model's context (16); generating at most 2 tokens\n",
  );
  const out = JSON.parse(r.stdout) as { ids: number[] };
  assert.ok(out.ids.length >= 1 && out.ids.length <= 2, `${out.ids.length} tokens`);
  fails(
    ["generate", "--model", gpt2, "--prompt-ids", ids(16)],
    "generate: the prompt has 16 tokens, the model's context is 16",
  );
  const fits = generateCli(gpt2, "--prompt-ids", ids(10), "--max-new-tokens", "6");
  assert.equal(fits.code, 0, fits.stderr);
  assert.equal(fits.stderr, "", "no warning when it fits");

  const llama = tinyModel("llama", 33, { max_position_embeddings: 16 });
  const soft = generateCli(llama, "--prompt-ids", ids(14), "--max-new-tokens", "6", "--json");
  assert.equal(soft.code, 0, soft.stderr);
  assert.equal(
    soft.stderr,
    "warning: prompt (14) + --max-new-tokens (6) exceed the model's context (16); positions past it were not trained\n",
  );
  assert.ok((JSON.parse(soft.stdout) as { ids: number[] }).ids.length > 2, "rotary positions go on");
});

/**
 * `--adapter adapter.gguf` (issue #13): a GGUF LoRA adapter written by `lora-ts export gguf-adapter`
 * (llama.cpp's layout) loads back as the PEFT adapter it came from, wherever --adapter is accepted:
 * `logits` gives the PEFT folder's logits and `merge` the PEFT merge. GQA llama (q/k rows permuted
 * with different head counts), GPT-2 (fused Conv1D attention), rsLoRA with a rank pattern (scales
 * folded into B), a trained adapter; and the one-line refusals.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { meta, writeGguf } from "../../src/io/gguf-write.js";
import { runCli, runTrain } from "../helpers/cli.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { randomAdapter } from "../interop/fixtures.js";
import { tempDir } from "../models/fixtures.js";

const IDS = "1,5,9,3,7,2,11";
const CACHE = tempDir("lora-ts-gguf-adapter-cache-");
const env = { LORA_TS_CACHE: CACHE };

function logits(model: string, ...adapter: string[]): number[][] {
  const r = runCli(
    ["logits", "--model", model, ...adapter.flatMap((a) => ["--adapter", a]), "--ids", IDS, "--json"],
    env,
  );
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { logits: number[][] }).logits;
}

function maxDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((row, i) => {
    row.forEach((v, j) => {
      m = Math.max(m, Math.abs(v - b[i]![j]!));
    });
  });
  return m;
}

function exportAdapter(model: string, adapter: string): string {
  const out = join(tempDir("lora-ts-gguf-adapter-"), "adapter.gguf");
  const r = runCli(["export", "gguf-adapter", "--model", model, "--adapter", adapter, "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

/** The GGUF adapter gives the PEFT folder's logits (and visibly not the base's). */
function roundTrip(model: string, peft: string): string {
  const gguf = exportAdapter(model, peft);
  const want = logits(model, peft);
  assert.ok(maxDiff(want, logits(model)) > 1e-3, "the adapter should change the logits");
  assert.ok(maxDiff(logits(model, gguf), want) < 1e-5);
  return gguf;
}

test("GQA llama, q/k/v/o + MLP: logits --adapter adapter.gguf equals the PEFT folder; merge takes it too", () => {
  const model = tinyModel("llama", 21, { num_key_value_heads: 2 });
  const peft = randomAdapter(model, {
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    r: 4,
    alpha: 8,
    seed: 5,
  });
  const gguf = roundTrip(model, peft);
  // The conversion is cached: a second use reads the same folder.
  assert.equal(readdirSync(join(CACHE, "gguf-adapter")).length >= 1, true);

  const fromGguf = join(tempDir("lora-ts-gguf-merge-"), "m");
  const fromPeft = join(tempDir("lora-ts-gguf-merge-"), "m");
  for (const [adapter, out] of [
    [gguf, fromGguf],
    [peft, fromPeft],
  ] as const) {
    const r = runCli(["merge", "--model", model, "--adapter", adapter, "--out", out], env);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.ok(maxDiff(logits(fromGguf), logits(fromPeft)) < 1e-5);

  // export gguf merges a GGUF adapter too: the same merged file as from the PEFT folder.
  const merged = (adapter: string) => {
    const out = join(tempDir("lora-ts-gguf-export-"), "merged.gguf");
    const r = runCli(["export", "gguf", "--model", model, "--adapter", adapter, "--out", out], env);
    assert.equal(r.code, 0, r.stderr);
    return readFileSync(out);
  };
  assert.ok(merged(gguf).equals(merged(peft)), "export gguf --adapter adapter.gguf = --adapter PEFT folder");
});

test("gpt2 (fused c_attn, Conv1D) and rsLoRA with a rank pattern and the embedding (A stored transposed) round-trip through GGUF", () => {
  const gpt2 = tinyModel("gpt2", 22);
  roundTrip(gpt2, randomAdapter(gpt2, { targets: ["c_attn", "c_proj", "c_fc"], r: 4, alpha: 8, seed: 6 }));
  const llama = tinyModel("llama", 23, { num_key_value_heads: 1 });
  const peft = randomAdapter(llama, {
    targets: ["embed_tokens", "q_proj", "k_proj", "v_proj", "o_proj"],
    r: 4,
    alpha: 6,
    rslora: true,
    rankPattern: { k_proj: 2, "model.layers.1.self_attn.o_proj": 8 },
    alphaPattern: { v_proj: 3 },
    seed: 7,
  });
  roundTrip(llama, peft);
});

test("a trained adapter (llama, q/k/v/o + MLP) round-trips through GGUF", () => {
  const model = tinyModel("llama", 24, { num_key_value_heads: 2 });
  const out = join(tempDir("lora-ts-gguf-train-"), "run");
  const r = runTrain(
    model,
    wordData(16),
    out,
    "--target",
    "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    "--max-steps",
    "3",
    "--lr",
    "0.05",
    "--max-length",
    "32",
  );
  assert.equal(r.code, 0, r.stderr);
  const peft = existsSync(join(out, "adapter_config.json")) ? out : join(out, "adapter");
  roundTrip(model, peft);
});

test("refusals are one line naming the .gguf file: not an adapter, other architecture, names or shapes off the base, no base model", () => {
  const llama = tinyModel("llama", 25, { num_key_value_heads: 2 });
  const gpt2 = tinyModel("gpt2", 26);
  const dir = tempDir("lora-ts-gguf-bad-");
  const refuse = (args: string[], pattern: RegExp) => {
    const r = runCli(args, env);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^error: [^\n]+\n$/);
    assert.match(r.stderr, pattern);
  };
  const logitsArgs = (model: string, adapter: string) => [
    "logits",
    "--model",
    model,
    "--adapter",
    adapter,
    "--ids",
    "1,2",
  ];

  // A model GGUF, not an adapter.
  const modelGguf = join(dir, "model.gguf");
  assert.equal(runCli(["export", "gguf", "--model", llama, "--out", modelGguf]).code, 0);
  refuse(
    logitsArgs(llama, modelGguf),
    /model\.gguf: not a LoRA adapter \(general\.type "model"|model\.gguf: not a LoRA adapter/,
  );

  // A llama adapter on a gpt2 base.
  const llamaGguf = exportAdapter(
    llama,
    randomAdapter(llama, { targets: ["q_proj"], r: 2, alpha: 4, seed: 1 }),
  );
  refuse(
    logitsArgs(gpt2, llamaGguf),
    /adapter\.gguf: architecture "llama" does not match the base model's "gpt2"/,
  );

  // Same architecture, other shapes (a wider llama).
  const wide = tinyModel("llama", 27, { num_key_value_heads: 2, intermediate_size: 96 });
  const mlp = exportAdapter(llama, randomAdapter(llama, { targets: ["up_proj"], r: 2, alpha: 4, seed: 2 }));
  refuse(logitsArgs(wide, mlp), /adapter\.gguf: tensor "blk\.0\.ffn_up\.weight\.lora_a".*does not fit/);

  // A tensor name the base has no module for, and a lora_a without its lora_b.
  const lone = join(dir, "lone.gguf");
  const header = [
    meta.str("general.architecture", "llama"),
    meta.str("general.type", "adapter"),
    meta.str("adapter.type", "lora"),
    meta.f32("adapter.lora.alpha", 4),
  ];
  const t = (name: string, shape: number[]) => ({
    name,
    shape,
    type: "f32" as const,
    data: () => new Float32Array(shape[0]! * shape[1]!),
  });
  writeGguf(lone, header, [t("blk.0.attn_q.weight.lora_a", [2, 32])]);
  refuse(
    logitsArgs(llama, lone),
    /lone\.gguf: tensor "blk\.0\.attn_q\.weight\.lora_a" has no matching "blk\.0\.attn_q\.weight\.lora_b"/,
  );
  const unknown = join(dir, "unknown.gguf");
  writeGguf(unknown, header, [
    t("blk.9.attn_q.weight.lora_a", [2, 32]),
    t("blk.9.attn_q.weight.lora_b", [32, 2]),
  ]);
  refuse(
    logitsArgs(llama, unknown),
    /unknown\.gguf: tensor "blk\.9\.attn_q\.weight\.lora_a": the base model has no module/,
  );

  // combine has no base model to read the GGUF against.
  refuse(
    ["combine", "--adapter", llamaGguf, "--weights", "1", "--out", join(dir, "c")],
    /adapter\.gguf: a GGUF adapter can only be used with a base model/,
  );
  // Not a GGUF at all, named .gguf: the usual "not an adapter directory".
  const junk = join(dir, "junk.gguf");
  writeFileSync(junk, "hello");
  refuse(logitsArgs(llama, junk), /junk\.gguf/);
  assert.ok(readFileSync(junk, "utf8") === "hello");
});

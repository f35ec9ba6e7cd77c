/**
 * `lora-ts export gguf` / `export gguf-adapter` without llama.cpp (these always run): the written
 * layout read back with io/gguf.ts (names, hparams, q/k rows, GPT-2's transposed Conv1D, dtypes), and
 * the flags checked before any work, each failure one line, --out never overwriting without --force nor
 * landing in the base model's folder.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { GGML_TYPE_F16, GGML_TYPE_F32, GgufFile } from "../../src/io/gguf.js";
import { GGML_TYPE_Q8_0 } from "../../src/io/gguf-write.js";
import { permuteRopeRows } from "../../src/io/rope-rows.js";
import { openModelDir } from "../../src/models/open-model.js";
import { runCli } from "../helpers/cli.js";
import { fileHashes } from "../helpers/file-hashes.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";
import { randomAdapter } from "./fixtures.js";

function exportTo(model: string, ...extra: string[]): string {
  const out = join(tempDir("lora-ts-export-"), "m.gguf");
  const r = runCli(["export", "gguf", "--model", model, "--out", out, ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

test("llama layout: hparams, q/k rows in llama.cpp's interleaved order, tied head left out", () => {
  const model = tinyModel("llama", 1, { num_key_value_heads: 2, tie_word_embeddings: true });
  const g = GgufFile.open(exportTo(model));
  const hf = openModelDir(model);
  assert.equal(g.string("general.architecture"), "llama");
  assert.equal(g.number("llama.block_count"), 2);
  assert.equal(g.number("llama.attention.head_count"), 4);
  assert.equal(g.number("llama.attention.head_count_kv"), 2);
  assert.equal(g.number("llama.embedding_length"), 32);
  assert.equal(g.string("tokenizer.ggml.model"), "llama");
  assert.ok(!g.hasTensor("output.weight"));
  const q = hf.weights.readFloat32("model.layers.1.self_attn.q_proj.weight");
  const k = hf.weights.readFloat32("model.layers.1.self_attn.k_proj.weight");
  assert.deepEqual(g.readTensor("blk.1.attn_q.weight"), permuteRopeRows(q, 4, 32, "fromHf"));
  assert.deepEqual(g.readTensor("blk.1.attn_k.weight"), permuteRopeRows(k, 2, 32, "fromHf"));
  assert.deepEqual(
    g.readTensor("blk.1.attn_v.weight"),
    hf.weights.readFloat32("model.layers.1.self_attn.v_proj.weight"),
  );
  hf.weights.close();
});

test("qwen2 layout: own architecture, q/k/v biases, rows as HF stores them", () => {
  const model = tinyModel("llama", 2, { model_type: "qwen2", architectures: ["Qwen2ForCausalLM"] });
  const g = GgufFile.open(exportTo(model));
  const hf = openModelDir(model);
  assert.equal(g.string("general.architecture"), "qwen2");
  assert.equal(g.number("qwen2.attention.head_count_kv"), 4);
  assert.deepEqual(
    g.readTensor("blk.0.attn_q.weight"),
    hf.weights.readFloat32("model.layers.0.self_attn.q_proj.weight"),
  );
  assert.deepEqual(
    g.readTensor("blk.0.attn_k.bias"),
    hf.weights.readFloat32("model.layers.0.self_attn.k_proj.bias"),
  );
  hf.weights.close();
});

test("gpt2 layout: fused attn_qkv transposed from Conv1D [in, out] to [out, in]; f16 and q8_0 keep 1-D tensors f32", () => {
  const model = tinyModel("gpt2", 3);
  const g = GgufFile.open(exportTo(model));
  assert.equal(g.string("general.architecture"), "gpt2");
  assert.deepEqual(g.tensorInfo("blk.0.attn_qkv.weight").shape, [72, 24]);
  const hf = openModelDir(model);
  const w = hf.weights.readFloat32("transformer.h.0.attn.c_attn.weight"); // [24, 72]
  hf.weights.close();
  const t = g.readTensor("blk.0.attn_qkv.weight");
  assert.equal(t[5 * 24 + 7], w[7 * 72 + 5]);
  const h = GgufFile.open(exportTo(model, "--dtype", "f16"));
  assert.equal(h.tensorInfo("blk.0.attn_qkv.weight").type, GGML_TYPE_F16);
  assert.equal(h.tensorInfo("blk.0.attn_norm.weight").type, GGML_TYPE_F32);
  const llama = GgufFile.open(exportTo(tinyModel("llama", 4), "--dtype", "q8_0"));
  assert.equal(llama.tensorInfo("blk.0.attn_q.weight").type, GGML_TYPE_Q8_0);
  assert.equal(llama.tensorInfo("blk.0.ffn_down.weight").type, GGML_TYPE_F16); // rows of 40: not a multiple of 32
  assert.equal(llama.tensorInfo("output_norm.weight").type, GGML_TYPE_F32);
});

test("flags are checked before any work, one line each; --out is never overwritten without --force", () => {
  const model = tinyModel("llama", 5);
  const dir = tempDir("lora-ts-export-");
  const one = (args: string[], re: RegExp) => {
    const r = runCli(args);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  };
  const out = join(dir, "m.gguf");
  one(
    ["export", "gguf", "--model", model, "--out", out, "--dtype", "q4"],
    /--dtype "q4": use one of f32, f16, bf16, q8_0/,
  );
  one(["export", "gguf", "--model", model, "--out", join(dir, "m.bin")], /must end in \.gguf/);
  one(["export", "gguf", "--model", join(dir, "nope"), "--out", out], /nope/);
  assert.ok(!existsSync(out));
  writeFileSync(out, "old");
  one(["export", "gguf", "--model", model, "--out", out], /already exists \(use --force/);
  assert.equal(runCli(["export", "gguf", "--model", model, "--out", out, "--force"]).code, 0);
  assert.equal(GgufFile.open(out).string("general.architecture"), "llama");
  const before = fileHashes(model);
  one(["export", "gguf", "--model", model, "--out", join(model, "m.gguf"), "--force"], /base model's folder/);
  const adapter = randomAdapter(model, { targets: ["q_proj"], r: 2, alpha: 2, seed: 1 });
  one(
    ["export", "gguf-adapter", "--model", model, "--adapter", adapter, "--out", join(adapter, "a.gguf")],
    /adapter's folder/,
  );
  one(
    ["export", "gguf-adapter", "--model", model, "--adapter", adapter, "--out", join(model, "a.gguf")],
    /base model's folder/,
  );
  assert.deepEqual(fileHashes(model), before);
});

test("--ollama writes a Modelfile beside --out (FROM the file, stop at EOS) and never replaces one without --force", () => {
  const model = tinyModel("llama", 6);
  const dir = tempDir("lora-ts-export-");
  const out = join(dir, "m.gguf");
  assert.equal(runCli(["export", "gguf", "--model", model, "--out", out, "--ollama"]).code, 0);
  assert.equal(readFileSync(join(dir, "Modelfile"), "utf8"), 'FROM ./m.gguf\nPARAMETER stop "</s>"\n');
  const r = runCli(["export", "gguf", "--model", model, "--out", join(dir, "n.gguf"), "--ollama"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: --ollama: .*Modelfile already exists \(use --force to replace it\)\n$/);
  assert.ok(!existsSync(join(dir, "n.gguf")));
});

/**
 * Hugging Face model folders: config parsing, the weight store, bf16 and sharded checkpoints, HF
 * cache symlinks, and the one-line errors for broken folders.
 */
import assert from "node:assert/strict";
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { bf16ToF32, f32ToBf16 } from "../../src/graph/half.js";
import { ropeInverseFrequencies } from "../../src/models/config.js";
import { expectedTensors, parseModelConfig } from "../../src/models/family.js";
import { loadForward, openModelDir } from "../../src/models/open-model.js";
import { LoraTsError } from "../../src/util/errors.js";
import { rng } from "../graph/gradcheck.js";
import {
  gpt2Config,
  llamaConfig,
  maxAbsDiff,
  randomWeights,
  tempDir,
  type Weights,
  type WriteOptions,
  writeModelDir,
} from "../models/fixtures.js";

const IDS = [3, 17, 5, 42, 0, 9, 33, 21];
const QWEN = llamaConfig({
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  num_key_value_heads: 2,
  tie_word_embeddings: true,
});

function weightsFor(config: Record<string, unknown>, seed = 5): Weights {
  const cfg = parseModelConfig(config, "config.json");
  const shapes = expectedTensors(cfg);
  if (cfg.tieWordEmbeddings) shapes.delete("lm_head.weight");
  return randomWeights(shapes, seed);
}

async function logitsOf(dir: string): Promise<Float32Array> {
  const runner = await loadForward(dir);
  try {
    return (await runner.run({ ids: [IDS] })).logits.data as Float32Array;
  } finally {
    await runner.close();
  }
}

function write(config: Record<string, unknown>, weights: Weights, opts?: WriteOptions): string {
  return writeModelDir(join(tempDir(), "m"), config, weights, opts);
}

// ---------------------------------------------------------------- config.json

test("config: llama / mistral / qwen2 / smollm / gpt2 fields", () => {
  const llama = parseModelConfig(
    llamaConfig({ num_key_value_heads: 2, eos_token_id: [2, 7], attention_bias: true }),
    "c.json",
  );
  assert.equal(llama.family, "llama");
  assert.deepEqual(
    [llama.hidden, llama.layers, llama.heads, llama.kvHeads, llama.headDim, llama.intermediate],
    [32, 2, 4, 2, 8, 40],
  );
  assert.deepEqual([llama.qkvBias, llama.oBias, llama.tieWordEmbeddings], [true, true, false]);
  assert.deepEqual([llama.bosTokenId, llama.eosTokenIds, llama.torchDtype], [1, [2, 7], "float32"]);
  const qwen = parseModelConfig(QWEN, "c.json");
  assert.deepEqual(
    [qwen.modelType, qwen.qkvBias, qwen.oBias, qwen.tieWordEmbeddings],
    ["qwen2", true, false, true],
  );
  const mistral = parseModelConfig(
    { ...llamaConfig(), model_type: undefined, architectures: ["MistralForCausalLM"], sliding_window: 4096 },
    "c.json",
  );
  assert.deepEqual([mistral.modelType, mistral.slidingWindow], ["mistral", 4096]);
  const smol = parseModelConfig(llamaConfig({ tie_word_embeddings: true, head_dim: 16 }), "c.json");
  assert.deepEqual([smol.modelType, smol.headDim, smol.tieWordEmbeddings], ["llama", 16, true]);
  const gpt2 = parseModelConfig(gpt2Config(), "c.json");
  assert.deepEqual(
    [gpt2.family, gpt2.hidden, gpt2.heads, gpt2.headDim, gpt2.intermediate, gpt2.maxPositions],
    ["gpt2", 24, 3, 8, 96, 64],
  );
  assert.deepEqual([gpt2.tieWordEmbeddings, gpt2.normEps, gpt2.activation], [true, 1e-5, "gelu_tanh"]);
});

test("config: llama3 rope scaling follows HF's frequency bands", () => {
  // Llama 3.1's published values, head_dim 128, theta 500000.
  const cfg = parseModelConfig(
    llamaConfig({
      hidden_size: 4096,
      num_attention_heads: 32,
      rope_theta: 500000,
      rope_scaling: {
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
        rope_type: "llama3",
      },
    }),
    "c.json",
  );
  const plain = ropeInverseFrequencies({ ...cfg, ropeScaling: null });
  const scaled = ropeInverseFrequencies(cfg);
  assert.equal(scaled.length, 64);
  const wavelen = plain.map((f) => (2 * Math.PI) / f);
  for (let i = 0; i < 64; i++) {
    if (wavelen[i]! < 8192 / 4)
      assert.equal(scaled[i], plain[i]); // high frequencies kept
    else if (wavelen[i]! > 8192)
      assert.ok(Math.abs(scaled[i]! - plain[i]! / 8) < 1e-18); // low ÷ factor
    else assert.ok(scaled[i]! < plain[i]! && scaled[i]! > plain[i]! / 8); // smoothed band
  }
});

// ---------------------------------------------------------------- weight store

test("weight store: names, info, readFloat32, tied alias", () => {
  const weights = weightsFor(QWEN);
  const dir = write(QWEN, weights);
  const m = openModelDir(dir);
  try {
    assert.equal(m.config.modelType, "qwen2");
    assert.equal(m.generationConfig, null);
    const w = m.weights;
    assert.deepEqual(new Set(w.names()), new Set(weights.keys()));
    assert.ok(w.has("lm_head.weight"), "tied head resolves to the embedding");
    assert.deepEqual(w.info("lm_head.weight"), w.info("model.embed_tokens.weight"));
    const info = w.info("model.layers.0.self_attn.k_proj.weight");
    assert.deepEqual([info.dtype, info.shape, info.length], ["float32", [16, 32], 16 * 32 * 4]);
    assert.deepEqual(
      w.readFloat32("model.layers.1.self_attn.q_proj.bias"),
      weights.get("model.layers.1.self_attn.q_proj.bias")!.data,
    );
  } finally {
    m.weights.close();
  }
});

test("optional generation_config.json and tokenizer_config.json are kept raw", () => {
  const dir = write(QWEN, weightsFor(QWEN));
  writeFileSync(
    join(dir, "generation_config.json"),
    JSON.stringify({ eos_token_id: [2, 3], do_sample: true }),
  );
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ chat_template: "{{ x }}", extra: 1 }));
  const m = openModelDir(dir);
  m.weights.close();
  assert.deepEqual(m.generationConfig, { eos_token_id: [2, 3], do_sample: true });
  assert.deepEqual(m.tokenizerConfig, { chat_template: "{{ x }}", extra: 1 });
});

// ---------------------------------------------------------------- dtypes, shards, symlinks

test("bf16 checkpoint: exact widening, and within bf16 tolerance of fp32", async () => {
  const weights = weightsFor(QWEN, 6);
  const f32 = await logitsOf(write(QWEN, weights));
  const bf16 = await logitsOf(write(QWEN, weights, { dtype: "bfloat16" }));
  // The same bf16-rounded values stored as fp32: the in-graph Cast is exact, so this must agree to
  // float32 round-off.
  const rounded: Weights = new Map(
    [...weights].map(([n, t]) => [n, { shape: t.shape, data: bf16ToF32(f32ToBf16(t.data)) }]),
  );
  const widened = await logitsOf(write(QWEN, rounded));
  assert.ok(maxAbsDiff(bf16, widened) < 1e-5, `bf16 vs widened fp32: ${maxAbsDiff(bf16, widened)}`);
  // Tolerance: bf16 keeps 8 significant bits, so rounding moves each weight by at most 2^-8 of its
  // value. How far that moves the logits depends on the model (this random one amplifies it a few
  // times), so the bound is calibrated on the same model: perturbing every fp32 weight by a random
  // factor 1 ± U(0, 2^-8) — rounding's worst case, spread uniformly — must move the logits (RMS)
  // at least two thirds as much as bf16 did. A dtype, byte-order or cast bug is orders larger.
  const rand = rng(99);
  const jittered: Weights = new Map(
    [...weights].map(([n, t]) => [
      n,
      { shape: t.shape, data: t.data.map((v) => v * (1 + (2 * rand() - 1) * 2 ** -8)) },
    ]),
  );
  const jitter = rms(diff(f32, await logitsOf(write(QWEN, jittered))));
  const err = rms(diff(f32, bf16));
  assert.ok(err > 0 && err < 1.5 * jitter, `bf16 vs fp32 RMS ${err}, ±2^-8 jitter RMS ${jitter}`);
});

const diff = (a: Float32Array, b: Float32Array) => a.map((v, i) => v - b[i]!);
const rms = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);

test("sharded checkpoint (2 shards + index) gives identical logits", async () => {
  const weights = weightsFor(QWEN, 7);
  const single = await logitsOf(write(QWEN, weights));
  const shardedDir = write(QWEN, weights, { shards: 2 });
  assert.deepEqual(await logitsOf(shardedDir), single);
  const m = openModelDir(shardedDir);
  const files = new Set(m.weights.names().map((n) => m.weights.info(n).file));
  m.weights.close();
  assert.equal(files.size, 2);
});

test("HF cache layout: symlinked snapshot files load from their real folder", async () => {
  const weights = weightsFor(QWEN, 8);
  const plain = write(QWEN, weights, { shards: 2 });
  const root = tempDir("lora-ts-hfcache-");
  const blobs = join(root, "blobs");
  const snap = join(root, "snapshots", "abc123");
  mkdirSync(blobs, { recursive: true });
  mkdirSync(snap, { recursive: true });
  const files = ["config.json", "model.safetensors.index.json"];
  files.push("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors");
  for (const [i, f] of files.entries()) {
    const blob = `sha256-${i}`;
    renameSync(join(plain, f), join(blobs, blob));
    symlinkSync(join("..", "..", "blobs", blob), join(snap, f));
  }
  const m = openModelDir(snap);
  assert.equal(m.weights.externalDir, blobs);
  m.weights.close();
  assert.deepEqual(await logitsOf(snap), await logitsOf(write(QWEN, weights)));
});

test("shards in different real folders: the others are read into memory", async () => {
  const weights = weightsFor(QWEN, 9);
  const dir = write(QWEN, weights, { shards: 2 });
  const elsewhere = tempDir("lora-ts-elsewhere-");
  const shard2 = "model-00002-of-00002.safetensors";
  renameSync(join(dir, shard2), join(elsewhere, shard2));
  symlinkSync(join(elsewhere, shard2), join(dir, shard2));
  const m = openModelDir(dir);
  const external = m.weights.names().map((n) => m.weights.isExternal(n));
  m.weights.close();
  assert.ok(external.includes(true) && external.includes(false));
  assert.deepEqual(await logitsOf(dir), await logitsOf(write(QWEN, weights)));
});

// ---------------------------------------------------------------- errors

function oneLineError(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LoraTsError, `not a LoraTsError: ${e}`);
    assert.ok(!e.message.includes("\n"), `multi-line message: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  });
}

test("errors: missing tensor names the tensor, the file and the expected shape", () => {
  const weights = weightsFor(QWEN);
  const dir = write(QWEN, weights, { omit: ["model.layers.1.mlp.up_proj.weight"] });
  oneLineError(
    () => openModelDir(dir),
    join(dir, "model.safetensors"),
    '"model.layers.1.mlp.up_proj.weight"',
    "[40, 32]",
  );
  const sharded = write(QWEN, weights, { shards: 2, omit: ["model.norm.weight"] });
  oneLineError(
    () => openModelDir(sharded),
    join(sharded, "model.safetensors.index.json"),
    '"model.norm.weight"',
  );
  const gpt2 = gpt2Config();
  const gw = weightsFor(gpt2);
  const gdir = write(gpt2, gw, {
    rename: (n) => n.replace(/^transformer\./, ""),
    omit: ["transformer.h.0.attn.c_attn.bias"],
  });
  oneLineError(() => openModelDir(gdir), '"transformer.h.0.attn.c_attn.bias"', "[72]");
});

test("errors: wrong shape names the tensor, its file, the found and expected shapes", () => {
  const weights = weightsFor(QWEN);
  const bad = weights.get("model.layers.0.self_attn.o_proj.weight")!;
  weights.set("model.layers.0.self_attn.o_proj.weight", { shape: [16, 64], data: bad.data });
  const dir = write(QWEN, weights, { shards: 2 });
  oneLineError(
    () => openModelDir(dir),
    "model-0000",
    '"model.layers.0.self_attn.o_proj.weight"',
    "[16, 64]",
    "expected [32, 32]",
  );
});

test("errors: unknown model_type, missing config.json, missing weights", () => {
  const dir = write(QWEN, weightsFor(QWEN));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...QWEN, model_type: "bert" }));
  oneLineError(
    () => openModelDir(dir),
    `${join(dir, "config.json")}: unsupported model_type "bert"; supported: llama, mistral, qwen2, gpt2`,
  );
  const empty = tempDir();
  oneLineError(() => openModelDir(empty), join(empty, "config.json"), "not found");
  writeFileSync(join(empty, "config.json"), JSON.stringify(QWEN));
  oneLineError(() => openModelDir(empty), join(empty, "model.safetensors"), "not found");
  writeFileSync(
    join(empty, "model.safetensors.index.json"),
    JSON.stringify({ weight_map: { x: "shard.safetensors" } }),
  );
  oneLineError(() => openModelDir(empty), join(empty, "shard.safetensors"), "not found");
  writeFileSync(join(empty, "config.json"), "{ not json");
  oneLineError(() => openModelDir(empty), join(empty, "config.json"), "invalid JSON");
  oneLineError(
    () => parseModelConfig({ ...QWEN, hidden_size: "big" }, "x/config.json"),
    'x/config.json: "hidden_size" must be a number',
  );
});

test("fuzz regression: shard names that are not file names in the folder are refused in one line", () => {
  // Before: "" and "." named the folder itself, which opened and failed on read with a bare EISDIR;
  // a name with a line break was quoted raw in "not found".
  const dir = write(QWEN, weightsFor(QWEN), { shards: 2 });
  const index = join(dir, "model.safetensors.index.json");
  for (const shard of ["", ".", "a\nb"]) {
    writeFileSync(index, JSON.stringify({ weight_map: { "model.norm.weight": shard } }));
    oneLineError(() => openModelDir(dir), index, `invalid shard file ${JSON.stringify(shard)}`);
  }
});

test("fuzz regression: JSON errors quoting a carriage return stay on one line", () => {
  // Before: only "\n" was cut from V8's message, which quotes the start of the text raw.
  const dir = write(QWEN, weightsFor(QWEN));
  writeFileSync(join(dir, "config.json"), "\u0010\r{}");
  oneLineError(() => openModelDir(dir), join(dir, "config.json"), "invalid JSON");
  assert.throws(
    () => openModelDir(dir),
    (e: unknown) => e instanceof LoraTsError && !/\r/.test(e.message),
  );
});

test("fuzz regression: a layer count beyond the checkpoint's tensors is refused before listing them", () => {
  // Before: the expected tensors of 2^31 - 1 layers were listed first: a minute, gigabytes, then
  // "RangeError: Map maximum size exceeded".
  const dir = write(QWEN, weightsFor(QWEN));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...QWEN, num_hidden_layers: 2 ** 31 - 1 }));
  oneLineError(() => openModelDir(dir), join(dir, "config.json"), "declares 2147483647 layers", "holds only");
});

test("fuzz regression: an unsupported activation or rope_scaling type is quoted on one line", () => {
  // Before: quoted raw, a line break included.
  oneLineError(
    () => parseModelConfig({ ...QWEN, hidden_act: "a\nb" }, "x/config.json"),
    'unsupported activation "a\\nb"',
  );
  oneLineError(
    () => parseModelConfig({ ...QWEN, rope_scaling: { rope_type: "a\nb" } }, "x/config.json"),
    'unsupported rope_scaling type "a\\nb"',
  );
});

test("fuzz regression: an index whose weight_map is empty is refused in one line", () => {
  // Before: no shard was opened, and picking the folder of the most shards read [][0]: TypeError.
  const dir = write(QWEN, weightsFor(QWEN), { shards: 2 });
  const index = join(dir, "model.safetensors.index.json");
  writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: {} }));
  oneLineError(() => openModelDir(dir), index, '"weight_map" lists no tensors');
});

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import {
  llama2cFloatCount,
  llama2cHfConfig,
  readLlama2cCheckpoint,
  readLlama2cTokenizer,
} from "../../src/io/llama2c.js";
import { permuteRopeRows } from "../../src/io/rope-rows.js";
import { FileFormatError } from "../../src/util/errors.js";
import { SHARED } from "../helpers/shared.js";

const permuteRopeToHf = (w: Float32Array, heads: number, cols: number) =>
  permuteRopeRows(w, heads, cols, "toHf");
const permuteRopeFromHf = (w: Float32Array, heads: number, cols: number) =>
  permuteRopeRows(w, heads, cols, "fromHf");
const shared = SHARED;
const storiesDir = path.join(shared, "models/stories260K");
const sharedMissing = !existsSync(path.join(storiesDir, "stories260K.bin"));
const SKIP = sharedMissing ? "needs ../shared (absent)" : false;

const tmp = mkdtempSync(path.join(tmpdir(), "lora-ts-llama2c-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function assertOneLine(fn: () => unknown, file: string, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${String(e)}`);
    assert.ok(!e.message.includes("\n"), `message has several lines: ${e.message}`);
    assert.ok(e.message.startsWith(`${file}: `), `message does not start with the path: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

/** A synthetic checkpoint whose float i (after the header) has the value i. */
function writeSynthetic(p: string, h: number[]): number {
  const [dim, hidden, layers, heads, kvHeads, vocab, seq] = h as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const hd = dim / heads;
  const kv = kvHeads * hd;
  const V = Math.abs(vocab);
  const n =
    V * dim +
    layers * (dim + dim * dim + 2 * kv * dim + dim * dim + dim + 3 * dim * hidden) +
    dim +
    seq * hd +
    (vocab < 0 ? V * dim : 0);
  const buf = Buffer.alloc(28 + 4 * n);
  h.forEach((v, i) => {
    buf.writeInt32LE(v, 4 * i);
  });
  for (let i = 0; i < n; i++) buf.writeFloatLE(i, 28 + 4 * i);
  writeFileSync(p, buf);
  return n;
}

test("synthetic llama2.c checkpoint: layout, HF names, untied classifier", () => {
  const p = path.join(tmp, "synthetic.bin");
  // dim 8, hidden 12, 2 layers, 2 heads, 1 kv head, vocab 10 untied (negative), seq_len 4
  const n = writeSynthetic(p, [8, 12, 2, 2, 1, -10, 4]);
  const ck = readLlama2cCheckpoint(p, { hfRopeLayout: false });
  assert.equal(llama2cFloatCount(ck.config), n);
  assert.deepEqual(ck.config, {
    dim: 8,
    hiddenDim: 12,
    nLayers: 2,
    nHeads: 2,
    nKvHeads: 1,
    vocabSize: 10,
    seqLen: 4,
    sharedClassifier: false,
    headDim: 4,
  });
  const names = [...ck.tensors.keys()];
  assert.equal(names[0], "model.embed_tokens.weight");
  assert.deepEqual(names.slice(1, 10), [
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
  ]);
  assert.deepEqual(names.slice(-2), ["model.norm.weight", "lm_head.weight"]);
  assert.equal(names.length, 1 + 2 * 9 + 2);
  // Offsets (in floats) as run.c's memory_map_weights computes them.
  const first = (name: string) => ck.tensors.get(name)!.data[0];
  let off = 0;
  const expectAt = (name: string, shape: number[], perLayerStride?: number) => {
    assert.deepEqual(ck.tensors.get(name)!.shape, shape, name);
    assert.equal(first(name), off, name);
    if (perLayerStride !== undefined) {
      assert.equal(first(name.replace("layers.0.", "layers.1.")), off + perLayerStride, name);
      off += 2 * perLayerStride;
    } else off += shape.reduce((a, b) => a * b, 1);
  };
  expectAt("model.embed_tokens.weight", [10, 8]);
  expectAt("model.layers.0.input_layernorm.weight", [8], 8);
  expectAt("model.layers.0.self_attn.q_proj.weight", [8, 8], 64);
  expectAt("model.layers.0.self_attn.k_proj.weight", [4, 8], 32);
  expectAt("model.layers.0.self_attn.v_proj.weight", [4, 8], 32);
  expectAt("model.layers.0.self_attn.o_proj.weight", [8, 8], 64);
  expectAt("model.layers.0.post_attention_layernorm.weight", [8], 8);
  expectAt("model.layers.0.mlp.gate_proj.weight", [12, 8], 96);
  expectAt("model.layers.0.mlp.down_proj.weight", [8, 12], 96);
  expectAt("model.layers.0.mlp.up_proj.weight", [12, 8], 96);
  expectAt("model.norm.weight", [8]);
  off += 2 * 4 * 2; // freq_cis_real / imag [seq_len, head_size/2]
  expectAt("lm_head.weight", [10, 8]);
  assert.equal(off, n);

  // Default: q/k rows permuted into HF's rotate_half layout, per head (k over n_kv_heads).
  const hf = readLlama2cCheckpoint(p);
  assert.equal(hf.hfRopeLayout, true);
  const rowsOf = (m: typeof ck, name: string) => {
    const d = m.tensors.get(name)!.data;
    return Array.from({ length: d.length / 8 }, (_, r) => d[r * 8]! - d[0]!).map((v) => v / 8);
  };
  // head_dim 4: HF row order within a head = interleaved rows [0, 2, 1, 3]
  assert.deepEqual(rowsOf(hf, "model.layers.0.self_attn.q_proj.weight"), [0, 2, 1, 3, 4, 6, 5, 7]);
  assert.deepEqual(rowsOf(hf, "model.layers.1.self_attn.k_proj.weight"), [0, 2, 1, 3]);
  assert.deepEqual(
    hf.tensors.get("model.layers.0.self_attn.v_proj.weight"),
    ck.tensors.get("model.layers.0.self_attn.v_proj.weight"),
  );
});

test("HF permutation: rotate_half RoPE on permuted q/k gives llama2.c's interleaved RoPE attention", () => {
  const heads = 3;
  const hd = 8;
  const dim = heads * hd;
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31 - 0.5;
  };
  const W = Float32Array.from({ length: dim * dim }, rnd);
  const Wk = Float32Array.from({ length: dim * dim }, rnd);
  const x = Float64Array.from({ length: dim }, rnd);
  const y = Float64Array.from({ length: dim }, rnd);
  const mv = (m: Float32Array, v: Float64Array) =>
    Array.from({ length: dim }, (_, r) => v.reduce((s, xv, c) => s + m[r * dim + c]! * xv, 0));
  const theta = (i: number, pos: number) => pos / 10000 ** ((2 * i) / hd);
  // llama2.c: rotate pairs (2i, 2i+1) of each head by angle theta(i)
  const ropeInterleaved = (q: number[], pos: number) => {
    const o = q.slice();
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < hd / 2; i++) {
        const a = theta(i, pos);
        const [q0, q1] = [q[h * hd + 2 * i]!, q[h * hd + 2 * i + 1]!];
        o[h * hd + 2 * i] = q0 * Math.cos(a) - q1 * Math.sin(a);
        o[h * hd + 2 * i + 1] = q0 * Math.sin(a) + q1 * Math.cos(a);
      }
    return o;
  };
  // HF: q*cos + rotate_half(q)*sin with cos/sin = cat(freqs, freqs)
  const ropeHalf = (q: number[], pos: number) => {
    const o = q.slice();
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < hd / 2; i++) {
        const a = theta(i, pos);
        const [q0, q1] = [q[h * hd + i]!, q[h * hd + hd / 2 + i]!];
        o[h * hd + i] = q0 * Math.cos(a) - q1 * Math.sin(a);
        o[h * hd + hd / 2 + i] = q1 * Math.cos(a) + q0 * Math.sin(a);
      }
    return o;
  };
  const qa = ropeInterleaved(mv(W, x), 5);
  const ka = ropeInterleaved(mv(Wk, y), 2);
  const qb = ropeHalf(mv(permuteRopeToHf(W, heads, dim), x), 5);
  const kb = ropeHalf(mv(permuteRopeToHf(Wk, heads, dim), y), 2);
  for (let h = 0; h < heads; h++) {
    let sa = 0;
    let sb = 0;
    for (let i = 0; i < hd; i++) {
      sa += qa[h * hd + i]! * ka[h * hd + i]!;
      sb += qb[h * hd + i]! * kb[h * hd + i]!;
    }
    assert.ok(Math.abs(sa - sb) < 1e-9 * Math.max(1, Math.abs(sa)), `head ${h}: ${sa} vs ${sb}`);
  }
  assert.deepEqual(permuteRopeFromHf(permuteRopeToHf(W, heads, dim), heads, dim), W);
  assert.throws(() => permuteRopeToHf(new Float32Array(10), 3, 2), RangeError);
});

test("llama2.c checkpoint errors are one-line FileFormatErrors with the path", () => {
  const p = path.join(tmp, "syn2.bin");
  writeSynthetic(p, [8, 12, 2, 2, 1, 10, 4]);
  const good = readFileSync(p);
  const cut = path.join(tmp, "cut.bin");
  for (const n of [0, 10, 27, 28, 100, good.length - 4]) {
    writeFileSync(cut, good.subarray(0, n));
    assertOneLine(() => readLlama2cCheckpoint(cut), cut, /truncated/);
  }
  writeFileSync(cut, Buffer.concat([good, Buffer.alloc(8)]));
  assertOneLine(() => readLlama2cCheckpoint(cut), cut, /unexpected size/);
  const bad = Buffer.from(good);
  bad.writeInt32LE(7, 12); // n_heads 7 does not divide dim 8
  writeFileSync(cut, bad);
  assertOneLine(() => readLlama2cCheckpoint(cut), cut, /not a llama2.c checkpoint/);
  const ak = Buffer.from(good);
  ak.writeUInt32LE(0x616b3432, 0);
  writeFileSync(cut, ak);
  assertOneLine(() => readLlama2cCheckpoint(cut), cut, /ak42/);
  assertOneLine(
    () => readLlama2cCheckpoint(path.join(tmp, "none.bin")),
    path.join(tmp, "none.bin"),
    /cannot open/,
  );
});

test("llama2.c tokenizer: synthetic file and errors", () => {
  const parts: Buffer[] = [];
  const i32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return b;
  };
  const f32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    return b;
  };
  parts.push(i32(5));
  for (const [s, t] of [
    [0, "<unk>"],
    [-1.5, " a"],
    [-2, "é"],
  ] as [number, string][]) {
    const b = Buffer.from(t, "utf8");
    parts.push(f32(s), i32(b.length), b);
  }
  const p = path.join(tmp, "tok.bin");
  const file = Buffer.concat(parts);
  writeFileSync(p, file);
  const v = readLlama2cTokenizer(p);
  assert.equal(v.maxTokenLength, 5);
  assert.deepEqual(v.tokens, ["<unk>", " a", "é"]);
  assert.deepEqual(Array.from(v.scores), [0, -1.5, -2]);
  assert.deepEqual(Array.from(v.tokenBytes[2]!), [0xc3, 0xa9]);
  assert.deepEqual(readLlama2cTokenizer(p, 2).tokens, ["<unk>", " a"]);
  assertOneLine(() => readLlama2cTokenizer(p, 4), p, /truncated/);
  writeFileSync(p, file.subarray(0, file.length - 1));
  assertOneLine(() => readLlama2cTokenizer(p), p, /truncated/);
  // token length 5 > max_token_length 3 (the "<unk>" entry)
  assert.throws(() => {
    writeFileSync(p, Buffer.concat([i32(3), ...parts.slice(1)]));
    readLlama2cTokenizer(p);
  }, FileFormatError);
});

test("stories260K.bin: config and HF-named tensors", { skip: SKIP }, () => {
  const ck = readLlama2cCheckpoint(path.join(storiesDir, "stories260K.bin"));
  assert.deepEqual(ck.config, {
    dim: 64,
    hiddenDim: 172,
    nLayers: 5,
    nHeads: 8,
    nKvHeads: 4,
    vocabSize: 512,
    seqLen: 512,
    sharedClassifier: true,
    headDim: 8,
  });
  assert.equal(28 + 4 * llama2cFloatCount(ck.config), 1056540);
  assert.equal(ck.tensors.size, 1 + 5 * 9 + 1);
  assert.ok(!ck.tensors.has("lm_head.weight"));
  assert.deepEqual(ck.tensors.get("model.embed_tokens.weight")!.shape, [512, 64]);
  assert.deepEqual(ck.tensors.get("model.layers.4.self_attn.k_proj.weight")!.shape, [32, 64]);
  assert.deepEqual(ck.tensors.get("model.layers.4.mlp.down_proj.weight")!.shape, [64, 172]);
  const norm = ck.tensors.get("model.norm.weight")!.data;
  assert.ok(norm.every((v) => Number.isFinite(v) && v !== 0));
  const cfg = llama2cHfConfig(ck.config);
  assert.equal(cfg["tie_word_embeddings"], true);
  assert.equal(cfg["num_key_value_heads"], 4);
  assert.equal(cfg["max_position_embeddings"], 512);
});

test("tok512.bin: 512 SentencePiece pieces as llama2.c exported them", { skip: SKIP }, () => {
  const v = readLlama2cTokenizer(path.join(storiesDir, "tok512.bin"));
  assert.equal(v.tokens.length, 512);
  assert.equal(readLlama2cTokenizer(path.join(storiesDir, "tok512.bin"), 512).tokens.length, 512);
  assert.equal(v.maxTokenLength, 7);
  assert.deepEqual(v.tokens.slice(0, 4), ["<unk>", "\n<s>\n", "\n</s>\n", "<0x00>"]);
  assert.equal(v.tokens[258], "<0xFF>");
  assert.equal(v.tokens[259], " t");
  assert.equal(v.tokens[410], " ");
  assert.equal(v.scores[260], -1);
});

test("fuzz regression: a directory given as a checkpoint or tokenizer is a one-line FileFormatError", () => {
  // Before: a directory opens on Linux, and the first read threw a bare EISDIR.
  const dir = mkdtempSync(path.join(tmp, "folder-"));
  assertOneLine(() => readLlama2cCheckpoint(dir), dir, /not a file \(a directory or a device\?\)/);
  assertOneLine(() => readLlama2cTokenizer(dir), dir, /not a file \(a directory or a device\?\)/);
});

/**
 * GGUF -> Hugging Face folder conversion (convert-gguf.ts) and `--model X.gguf` (model-path.ts):
 * synthetic GGUF files written here (no ../shared needed), then the real stories260K.gguf against
 * reference.json's greedy ids and against the llama2.c conversion of the same model.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { generate } from "../../src/infer/generate.js";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { GgufValueType } from "../../src/io/gguf.js";
import { permuteRopeRows } from "../../src/io/rope-rows.js";
import { openSafetensors } from "../../src/io/safetensors.js";
import { convertGguf, readGgufAsHf } from "../../src/models/convert-gguf.js";
import { convertLlama2c } from "../../src/models/convert-llama2c.js";
import { ggufCacheDir, resolveModelPath } from "../../src/models/model-path.js";
import { openModelDir } from "../../src/models/open-model.js";
import { LoraTsError } from "../../src/util/errors.js";
import { BIN } from "../helpers/cli.js";
import { SHARED } from "../helpers/shared.js";

const shared = SHARED;
const storiesDir = path.join(shared, "models/stories260K");
const storiesGguf = path.join(storiesDir, "stories260K.gguf");
const SKIP = existsSync(storiesGguf) ? false : "needs ../shared (absent)";

const tmp = mkdtempSync(path.join(tmpdir(), "lora-ts-convert-gguf-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
// Every cache folder this file makes lives under tmp.
process.env["LORA_TS_CACHE"] = path.join(tmp, "cache");

// ---- a minimal GGUF writer (v3, little-endian) ---------------------------------------------------

type Kv =
  | [string, "u32", number]
  | [string, "f32", number]
  | [string, "str", string]
  | [string, "strs", string[]]
  | [string, "f32s", number[]]
  | [string, "i32s", number[]];

interface TensorSpec {
  name: string;
  /** Row-major (PyTorch) shape; written reversed, as GGUF's dims. */
  shape: number[];
  /** ggml type: 0 F32, 1 F16, 16 IQ2_XXS, 30 BF16. */
  type: number;
  data: Buffer;
}

function writeGguf(kvs: Kv[], tensors: TensorSpec[]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    parts.push(b);
  };
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    parts.push(b);
  };
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    u64(b.length);
    parts.push(b);
  };
  const f32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    parts.push(b);
  };
  const i32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    parts.push(b);
  };
  parts.push(Buffer.from("GGUF", "latin1"));
  u32(3);
  u64(tensors.length);
  u64(kvs.length);
  for (const [key, kind, v] of kvs) {
    str(key);
    if (kind === "u32") {
      u32(GgufValueType.UINT32);
      u32(v);
    } else if (kind === "f32") {
      u32(GgufValueType.FLOAT32);
      f32(v);
    } else if (kind === "str") {
      u32(GgufValueType.STRING);
      str(v);
    } else {
      u32(GgufValueType.ARRAY);
      const items = v as (string | number)[];
      u32(
        kind === "strs"
          ? GgufValueType.STRING
          : kind === "f32s"
            ? GgufValueType.FLOAT32
            : GgufValueType.INT32,
      );
      u64(items.length);
      for (const it of items) {
        if (kind === "strs") str(it as string);
        else if (kind === "f32s") f32(it as number);
        else i32(it as number);
      }
    }
  }
  const align = 32;
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(off);
    off += Math.ceil(t.data.length / align) * align;
  }
  tensors.forEach((t, i) => {
    str(t.name);
    u32(t.shape.length);
    for (const d of [...t.shape].reverse()) u64(d);
    u32(t.type);
    u64(offsets[i]!);
  });
  let header = Buffer.concat(parts);
  header = Buffer.concat([header, Buffer.alloc(Math.ceil(header.length / align) * align - header.length)]);
  const data = tensors.map((t) =>
    Buffer.concat([t.data, Buffer.alloc(Math.ceil(t.data.length / align) * align - t.data.length)]),
  );
  return Buffer.concat([header, ...data]);
}

/** Deterministic float32 values (a small LCG), distinct enough to catch any misplaced row. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = Math.fround((s / 2 ** 32 - 0.5) * 0.2);
  }
  return out;
}

/** float32 -> IEEE half bits (round to nearest even; the test values are small normals). */
function toF16Bits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const e = ((u >>> 23) & 0xff) - 127 + 15;
  const m = u & 0x7fffff;
  if (e <= 0) return sign; // flush tiny values (none here matter)
  let h = sign | (e << 10) | (m >>> 13);
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return h;
}

const TINY = { vocab: 16, hidden: 8, heads: 2, kvHeads: 1, headDim: 4, inter: 12, layers: 2 };

/**
 * A tiny llama GGUF. `f16` stores the 2-D matrices as F16 (norms stay F32, as llama.cpp does);
 * `output`: "untied" (its own output.weight), "copy" (output.weight = token_embd bytes), "none".
 */
function tinyLlama(
  opts: { arch?: string; f16?: boolean; output?: "untied" | "copy" | "none"; qType?: number } = {},
): { file: Buffer; f32: Map<string, Float32Array>; tensors: TensorSpec[] } {
  const c = TINY;
  const shapes: [string, number[]][] = [
    ["token_embd.weight", [c.vocab, c.hidden]],
    ["output_norm.weight", [c.hidden]],
  ];
  if ((opts.output ?? "untied") !== "none") shapes.push(["output.weight", [c.vocab, c.hidden]]);
  for (let l = 0; l < c.layers; l++) {
    shapes.push(
      [`blk.${l}.attn_norm.weight`, [c.hidden]],
      [`blk.${l}.attn_q.weight`, [c.heads * c.headDim, c.hidden]],
      [`blk.${l}.attn_k.weight`, [c.kvHeads * c.headDim, c.hidden]],
      [`blk.${l}.attn_v.weight`, [c.kvHeads * c.headDim, c.hidden]],
      [`blk.${l}.attn_output.weight`, [c.hidden, c.heads * c.headDim]],
      [`blk.${l}.ffn_norm.weight`, [c.hidden]],
      [`blk.${l}.ffn_gate.weight`, [c.inter, c.hidden]],
      [`blk.${l}.ffn_up.weight`, [c.inter, c.hidden]],
      [`blk.${l}.ffn_down.weight`, [c.hidden, c.inter]],
    );
  }
  const f32 = new Map<string, Float32Array>();
  const tensors: TensorSpec[] = [];
  shapes.forEach(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    let v = values(n, i + 1);
    if (name === "output.weight" && opts.output === "copy") v = f32.get("token_embd.weight")!;
    f32.set(name, v);
    const half = opts.f16 === true && shape.length === 2;
    let data: Buffer;
    let type = half ? 1 : 0;
    if (half) {
      const u16 = Uint16Array.from(v, toF16Bits);
      data = Buffer.from(u16.buffer);
    } else {
      data = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
    if (opts.qType !== undefined && name === "blk.1.ffn_up.weight") {
      type = opts.qType;
      data = Buffer.alloc(n); // content never read: the type alone is refused
    }
    tensors.push({ name, shape, type, data });
  });
  const kvs: Kv[] = [
    ["general.architecture", "str", opts.arch ?? "llama"],
    ["general.name", "str", "tiny"],
    [`${opts.arch ?? "llama"}.context_length`, "u32", 64],
    [`${opts.arch ?? "llama"}.embedding_length`, "u32", c.hidden],
    [`${opts.arch ?? "llama"}.feed_forward_length`, "u32", c.inter],
    [`${opts.arch ?? "llama"}.block_count`, "u32", c.layers],
    [`${opts.arch ?? "llama"}.attention.head_count`, "u32", c.heads],
    [`${opts.arch ?? "llama"}.attention.head_count_kv`, "u32", c.kvHeads],
    [`${opts.arch ?? "llama"}.rope.dimension_count`, "u32", c.headDim],
    [`${opts.arch ?? "llama"}.rope.freq_base`, "f32", 500000],
    [`${opts.arch ?? "llama"}.attention.layer_norm_rms_epsilon`, "f32", 1e-6],
    ["tokenizer.ggml.bos_token_id", "u32", 1],
    ["tokenizer.ggml.eos_token_id", "u32", 2],
  ];
  return { file: writeGguf(kvs, tensors), f32, tensors };
}

function writeTemp(name: string, b: Buffer): string {
  const p = path.join(tmp, name);
  writeFileSync(p, b);
  return p;
}

/** Asserts `fn` throws a one-line LoraTsError naming `file` and matching `re`. */
async function assertOneLine(fn: () => unknown, file: string, re: RegExp): Promise<string> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof LoraTsError, `expected a LoraTsError, got ${String(e)}`);
    assert.ok(!e.message.includes("\n"), `message is not one line: ${e.message}`);
    assert.ok(e.message.includes(file), `message does not name ${file}: ${e.message}`);
    assert.match(e.message, re);
    return e.message;
  }
  assert.fail("expected an error");
}

// ---- synthetic files ------------------------------------------------------------------------------

test("tiny F32 llama GGUF -> HF folder: config, names, q/k rows in rotate-half layout, untied lm_head", async () => {
  const { file, f32 } = tinyLlama();
  const p = writeTemp("tiny.gguf", file);
  const out = path.join(tmp, "tiny-hf");
  await convertGguf({ model: p, out });
  const config = JSON.parse(readFileSync(path.join(out, "config.json"), "utf8"));
  assert.equal(config.model_type, "llama");
  assert.equal(config.hidden_size, 8);
  assert.equal(config.intermediate_size, 12);
  assert.equal(config.num_hidden_layers, 2);
  assert.equal(config.num_attention_heads, 2);
  assert.equal(config.num_key_value_heads, 1);
  assert.equal(config.head_dim, 4);
  assert.equal(config.vocab_size, 16);
  assert.equal(config.max_position_embeddings, 64);
  assert.equal(config.rms_norm_eps, 1e-6);
  assert.equal(config.rope_theta, 500000);
  assert.equal(config.tie_word_embeddings, false);
  assert.equal(config.bos_token_id, 1);
  assert.equal(config.eos_token_id, 2);
  assert.equal(config.torch_dtype, "float32");
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, "generation_config.json"), "utf8")), {
    bos_token_id: 1,
    eos_token_id: 2,
  });
  assert.ok(!existsSync(path.join(out, "tokenizer.json")), "no tokenizer metadata -> no tokenizer.json");

  const st = openSafetensors(path.join(out, "model.safetensors"));
  try {
    assert.equal(st.tensors.size, 3 + 2 * 9);
    const get = (n: string) => st.readFloat32(n);
    assert.deepEqual(get("model.embed_tokens.weight"), f32.get("token_embd.weight"));
    assert.deepEqual(get("lm_head.weight"), f32.get("output.weight"));
    assert.deepEqual(get("model.norm.weight"), f32.get("output_norm.weight"));
    assert.deepEqual(st.info("model.layers.1.mlp.down_proj.weight").shape, [8, 12]);
    assert.deepEqual(get("model.layers.1.mlp.down_proj.weight"), f32.get("blk.1.ffn_down.weight"));
    assert.deepEqual(get("model.layers.0.mlp.gate_proj.weight"), f32.get("blk.0.ffn_gate.weight"));
    assert.deepEqual(get("model.layers.0.mlp.up_proj.weight"), f32.get("blk.0.ffn_up.weight"));
    assert.deepEqual(get("model.layers.0.self_attn.v_proj.weight"), f32.get("blk.0.attn_v.weight"));
    assert.deepEqual(get("model.layers.0.self_attn.o_proj.weight"), f32.get("blk.0.attn_output.weight"));
    assert.deepEqual(get("model.layers.0.input_layernorm.weight"), f32.get("blk.0.attn_norm.weight"));
    assert.deepEqual(get("model.layers.0.post_attention_layernorm.weight"), f32.get("blk.0.ffn_norm.weight"));
    for (let l = 0; l < 2; l++) {
      const q = get(`model.layers.${l}.self_attn.q_proj.weight`);
      const k = get(`model.layers.${l}.self_attn.k_proj.weight`);
      assert.notDeepEqual(q, f32.get(`blk.${l}.attn_q.weight`));
      assert.deepEqual(q, permuteRopeRows(f32.get(`blk.${l}.attn_q.weight`)!, 2, 8, "toHf"));
      assert.deepEqual(k, permuteRopeRows(f32.get(`blk.${l}.attn_k.weight`)!, 1, 8, "toHf"));
    }
  } finally {
    st.close();
  }
  // The folder passes the model loader's checks (names, shapes, dtypes).
  const m = openModelDir(out);
  assert.equal(m.config.tieWordEmbeddings, false);
  assert.ok(m.weights.has("lm_head.weight"));
  m.weights.close();
});

test("tiny GGUF: output.weight equal to token_embd bit for bit, or absent, means tied (no lm_head)", async () => {
  for (const output of ["copy", "none"] as const) {
    const p = writeTemp(`tiny-${output}.gguf`, tinyLlama({ output }).file);
    const m = readGgufAsHf(p);
    assert.equal(m.config["tie_word_embeddings"], true, output);
    assert.ok(!m.tensors.some((t) => t.name === "lm_head.weight"), output);
    assert.equal(m.tensors.length, 2 + 2 * 9);
  }
});

test("tiny F16 GGUF keeps float16 bits; q/k permuted as whole rows", async () => {
  const { file, tensors } = tinyLlama({ f16: true });
  const p = writeTemp("tiny-f16.gguf", file);
  const out = path.join(tmp, "tiny-f16-hf");
  await convertGguf({ model: p, out });
  const config = JSON.parse(readFileSync(path.join(out, "config.json"), "utf8"));
  assert.equal(config.torch_dtype, "float16");
  const raw = (n: string) => tensors.find((t) => t.name === n)!.data;
  const st = openSafetensors(path.join(out, "model.safetensors"));
  try {
    assert.equal(st.info("model.embed_tokens.weight").dtype, "float16");
    assert.equal(st.info("model.norm.weight").dtype, "float32");
    assert.deepEqual(Buffer.from(st.read("model.embed_tokens.weight")), raw("token_embd.weight"));
    assert.deepEqual(Buffer.from(st.read("model.layers.1.mlp.up_proj.weight")), raw("blk.1.ffn_up.weight"));
    const q = Buffer.from(st.read("model.layers.0.self_attn.q_proj.weight"));
    assert.deepEqual(q, Buffer.from(permuteRopeRows(raw("blk.0.attn_q.weight"), 2, 8 * 2, "toHf")));
    // The byte-level permutation is the same row order as the float32 one llama2c.ts applies.
    const rows = Float32Array.from({ length: 8 * 8 }, (_, i) => i);
    const viaBytes = new Float32Array(permuteRopeRows(new Uint8Array(rows.buffer), 2, 8 * 4, "toHf").buffer);
    assert.deepEqual(viaBytes, permuteRopeRows(rows, 2, 8, "toHf"));
  } finally {
    st.close();
  }
  openModelDir(out).weights.close();
});

test("unsupported architecture, quantized tensor: one-line errors naming the file, no folder left", async () => {
  const arch = writeTemp("tiny-gpt2.gguf", tinyLlama({ arch: "gpt2" }).file);
  const out = path.join(tmp, "never");
  await assertOneLine(() => convertGguf({ model: arch, out }), arch, /architecture "gpt2" is not supported/);
  // (IQ2_XXS rather than Q8_0: the tiny rows are shorter than a Q8_0 block, which the reader refuses.)
  const quant = writeTemp("tiny-iq2.gguf", tinyLlama({ qType: 16 }).file);
  await assertOneLine(
    () => convertGguf({ model: quant, out }),
    quant,
    /tensor "blk\.1\.ffn_up\.weight" has type IQ2_XXS; only F32, F16 and BF16/,
  );
  // Through --model too (the cache conversion), and nothing half-written is left in the cache.
  await assertOneLine(() => resolveModelPath(arch), arch, /architecture "gpt2"/);
  assert.ok(!existsSync(out));
  assert.ok(!existsSync(ggufCacheDir(arch)));
  const cacheGguf = path.join(tmp, "cache", "gguf");
  assert.deepEqual(existsSync(cacheGguf) ? readdirSync(cacheGguf) : [], []);
});

test("CLI: convert gguf with an unsupported architecture prints one error line and exits 1", () => {
  const arch = writeTemp("tiny-gpt2-cli.gguf", tinyLlama({ arch: "gpt2" }).file);
  const r = spawnSync(
    process.execPath,
    [BIN, "convert", "gguf", "--model", arch, "--out", path.join(tmp, "x")],
    {
      encoding: "utf8",
    },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^error: .*tiny-gpt2-cli\.gguf: GGUF architecture "gpt2" is not supported/);
});

test("library: convertGguf never replaces the folder holding its input, even with force (issue #12)", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "lora-ts-gguf-in-"));
  const input = path.join(dir, "tiny.gguf");
  const bytes = tinyLlama().file;
  writeFileSync(input, bytes);
  await assert.rejects(
    convertGguf({ model: input, out: dir, force: true }),
    new LoraTsError(`--out ${dir}: contains the input file ${input}, which is only ever read`),
  );
  assert.ok(readFileSync(input).equals(bytes), "the input is untouched");
  rmSync(dir, { recursive: true, force: true });
});

test("CLI: convert --out is never the input's own folder, nor one holding it, whatever the flags (issue #12)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "lora-ts-gguf-in-"));
  const sub = path.join(dir, "models");
  mkdirSync(sub);
  const input = path.join(sub, "tiny.gguf");
  const bytes = tinyLlama().file;
  writeFileSync(input, bytes);
  for (const out of [sub, dir, input]) {
    const r = spawnSync(
      process.execPath,
      [BIN, "convert", "gguf", "--model", input, "--out", out, "--force"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 1, `--out ${out}: ${r.stdout}`);
    const how = out === input ? "is" : "contains";
    assert.equal(r.stderr, `error: --out ${out}: ${how} the input file ${input}, which is only ever read\n`);
    assert.deepEqual(readdirSync(dir), ["models"], "nothing is written beside the input's folder");
    assert.deepEqual(readdirSync(sub), ["tiny.gguf"], "the input's folder is untouched");
    assert.ok(readFileSync(input).equals(bytes), "the input is untouched");
  }
  rmSync(dir, { recursive: true, force: true });
});

test("resolveModelPath: directories pass through; a GGUF file converts once into the cache", async () => {
  assert.equal(await resolveModelPath(tmp), tmp);
  assert.equal(await resolveModelPath(path.join(tmp, "missing")), path.join(tmp, "missing"));
  const p = writeTemp("tiny-cache.gguf", tinyLlama().file);
  const dir = await resolveModelPath(p);
  assert.equal(dir, ggufCacheDir(p));
  assert.ok(dir.startsWith(path.join(tmp, "cache", "gguf")));
  const before = statSync(path.join(dir, "model.safetensors")).mtimeMs;
  assert.equal(await resolveModelPath(p), dir);
  assert.equal(statSync(path.join(dir, "model.safetensors")).mtimeMs, before, "reused, not rewritten");
  // No temporary folders left beside it.
  assert.deepEqual(
    readdirSync(path.dirname(dir)).filter((n) => n.startsWith(".")),
    [],
  );
});

// ---- stories260K.gguf (../shared) ---------------------------------------------------------------

function reference(): number[] {
  const ref = JSON.parse(readFileSync(path.join(storiesDir, "reference.json"), "utf8")) as {
    greedy_from_bos_200: number[];
  };
  return ref.greedy_from_bos_200;
}

test("stories260K.gguf: converted tensors equal the llama2.c conversion bit for bit", {
  skip: SKIP,
}, async () => {
  const fromGguf = path.join(tmp, "stories-gguf");
  const fromBin = path.join(tmp, "stories-bin");
  await convertGguf({ model: storiesGguf, out: fromGguf });
  await convertLlama2c({
    model: path.join(storiesDir, "stories260K.bin"),
    tokenizer: path.join(storiesDir, "tok512.bin"),
    out: fromBin,
  });
  const a = openSafetensors(path.join(fromGguf, "model.safetensors"));
  const b = openSafetensors(path.join(fromBin, "model.safetensors"));
  try {
    assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
    assert.ok(!a.tensors.has("lm_head.weight"), "tied: output.weight equals token_embd.weight");
    for (const name of b.tensors.keys()) {
      assert.equal(a.info(name).dtype, "float32", name);
      assert.deepEqual(a.info(name).shape, b.info(name).shape, name);
      assert.ok(Buffer.from(a.read(name)).equals(Buffer.from(b.read(name))), `${name} differs`);
    }
  } finally {
    a.close();
    b.close();
  }
  const ca = JSON.parse(readFileSync(path.join(fromGguf, "config.json"), "utf8"));
  const cb = JSON.parse(readFileSync(path.join(fromBin, "config.json"), "utf8"));
  for (const k of [
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "rms_norm_eps",
    "rope_theta",
    "tie_word_embeddings",
    "bos_token_id",
    "eos_token_id",
  ]) {
    assert.deepEqual(ca[k], cb[k], k);
  }
  assert.ok(existsSync(path.join(fromGguf, "tokenizer.json")));
  assert.ok(existsSync(path.join(fromGguf, "tokenizer_config.json")));
});

test("stories260K.gguf loaded directly: 200 greedy ids from [1] equal reference.json", {
  skip: SKIP,
}, async () => {
  const lm = await loadCausalLM(storiesGguf);
  try {
    const [ids] = await generate(lm, [[1]], { maxNewTokens: 200, temperature: 0 });
    assert.deepEqual(ids, reference());
    assert.ok(lm.tokenizer, "tokenizer.json came from the GGUF metadata");
  } finally {
    await lm.release();
  }
});

test("CLI: generate --model stories260K.gguf --prompt-ids 1 --max-new-tokens 200 --json", {
  skip: SKIP,
}, () => {
  const cache = mkdtempSync(path.join(tmp, "cli-cache-"));
  const args = [
    BIN,
    "generate",
    "--model",
    storiesGguf,
    "--prompt-ids",
    "1",
    "--max-new-tokens",
    "200",
    "--json",
  ];
  const env = { ...process.env, LORA_TS_CACHE: cache };
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { prompt_ids: number[]; ids: number[] };
  assert.deepEqual(out.prompt_ids, [1]);
  assert.deepEqual(out.ids, reference());
  assert.equal(readdirSync(path.join(cache, "gguf")).length, 1);
  // Second run reuses the cache folder; `info` takes the .gguf too.
  const info = spawnSync(process.execPath, [BIN, "info", "--model", storiesGguf, "--json"], {
    encoding: "utf8",
    env,
  });
  assert.equal(info.status, 0, info.stderr);
  const s = JSON.parse(info.stdout);
  assert.equal(s.layers, 5);
  assert.equal(s.kv_heads, 4);
  assert.equal(s.vocab_size, 512);
  assert.equal(s.tied_embeddings, true);
  assert.equal(readdirSync(path.join(cache, "gguf")).length, 1);
});

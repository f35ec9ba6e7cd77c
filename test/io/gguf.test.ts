import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { f16ToF32 as f16ArrayToF32 } from "../../src/graph/half.js";
import { GgufFile, GgufValueType } from "../../src/io/gguf.js";
import { readLlama2cCheckpoint } from "../../src/io/llama2c.js";
import { permuteRopeRows } from "../../src/io/rope-rows.js";
import { tokenizerFromGguf } from "../../src/io/tokenizer-json.js";
import { FileFormatError } from "../../src/util/errors.js";
import { SHARED } from "../helpers/shared.js";

const shared = SHARED;
const storiesDir = path.join(shared, "models/stories260K");
const sharedMissing = !existsSync(path.join(storiesDir, "stories260K.gguf"));
const SKIP = sharedMissing ? "needs ../shared (absent)" : false;

const tmp = mkdtempSync(path.join(tmpdir(), "lora-ts-gguf-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---- a small GGUF writer, for synthetic files --------------------------------------------------

class W {
  parts: Buffer[] = [];
  get length() {
    return this.parts.reduce((s, b) => s + b.length, 0);
  }
  raw(b: Buffer) {
    this.parts.push(b);
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.raw(b);
  }
  u64(v: number | bigint) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.raw(b);
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.raw(b);
  }
  done() {
    return Buffer.concat(this.parts);
  }
}

function scalarBytes(type: GgufValueType, v: number | bigint | boolean): Buffer {
  const b = Buffer.alloc(8);
  switch (type) {
    case GgufValueType.UINT8:
      b.writeUInt8(v as number);
      return b.subarray(0, 1);
    case GgufValueType.INT8:
      b.writeInt8(v as number);
      return b.subarray(0, 1);
    case GgufValueType.UINT16:
      b.writeUInt16LE(v as number);
      return b.subarray(0, 2);
    case GgufValueType.INT16:
      b.writeInt16LE(v as number);
      return b.subarray(0, 2);
    case GgufValueType.UINT32:
      b.writeUInt32LE(v as number);
      return b.subarray(0, 4);
    case GgufValueType.INT32:
      b.writeInt32LE(v as number);
      return b.subarray(0, 4);
    case GgufValueType.FLOAT32:
      b.writeFloatLE(v as number);
      return b.subarray(0, 4);
    case GgufValueType.FLOAT64:
      b.writeDoubleLE(v as number);
      return b;
    case GgufValueType.UINT64:
      b.writeBigUInt64LE(v as bigint);
      return b;
    case GgufValueType.INT64:
      b.writeBigInt64LE(v as bigint);
      return b;
    case GgufValueType.BOOL:
      return Buffer.from([v ? 1 : 0]);
    default:
      return Buffer.alloc(0); // unknown type: no value bytes
  }
}

interface TensorSpec {
  name: string;
  dims: number[];
  type: number;
  data: Buffer;
}

function writeGguf(
  kvs: [string, GgufValueType, unknown, GgufValueType?][],
  tensors: TensorSpec[],
  alignment = 32,
  version = 3,
): Buffer {
  const w = new W();
  w.raw(Buffer.from("GGUF", "latin1"));
  w.u32(version);
  w.u64(tensors.length);
  w.u64(kvs.length);
  const value = (type: GgufValueType, v: unknown, itemType?: GgufValueType) => {
    if (type === GgufValueType.STRING) w.str(v as string);
    else if (type === GgufValueType.ARRAY) {
      const items = v as unknown[];
      w.u32(itemType!);
      w.u64(items.length);
      for (const it of items) {
        if (itemType === GgufValueType.ARRAY) {
          const [t2, v2, i2] = it as [GgufValueType, unknown, GgufValueType];
          // nested: element type is fixed by itemType (ARRAY), the inner array carries its own
          value(t2, v2, i2);
        } else value(itemType!, it);
      }
    } else w.raw(scalarBytes(type, v as number));
  };
  for (const [k, t, v, it] of kvs) {
    w.str(k);
    w.u32(t);
    value(t, v, it);
  }
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(off);
    off += Math.ceil(t.data.length / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offsets[i]!);
  });
  const pad = Math.ceil(w.length / alignment) * alignment - w.length;
  w.raw(Buffer.alloc(pad));
  tensors.forEach((t, i) => {
    w.raw(t.data);
    // pad between tensors, not after the last one (so any cut reaches tensor data)
    if (i < tensors.length - 1)
      w.raw(Buffer.alloc(Math.ceil(t.data.length / alignment) * alignment - t.data.length));
  });
  return w.done();
}

function f32Bytes(a: number[]): Buffer {
  return Buffer.from(new Float32Array(a).buffer);
}

const f16Vals = [0, 1, -2, 0.5, 65504, 2 ** -24, -0.099975586, 3.140625];
const f16Bits = [0x0000, 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0xae66, 0x4248];

function syntheticFile(alignment: number): Buffer {
  return writeGguf(
    [
      ["general.architecture", GgufValueType.STRING, "llama"],
      ["general.alignment", GgufValueType.UINT32, alignment],
      ["t.u8", GgufValueType.UINT8, 250],
      ["t.i8", GgufValueType.INT8, -100],
      ["t.u16", GgufValueType.UINT16, 60000],
      ["t.i16", GgufValueType.INT16, -30000],
      ["t.u32", GgufValueType.UINT32, 4000000000],
      ["t.i32", GgufValueType.INT32, -2000000000],
      ["t.f32", GgufValueType.FLOAT32, 0.25],
      ["t.f64", GgufValueType.FLOAT64, 1e-300],
      ["t.bool", GgufValueType.BOOL, true],
      ["t.u64", GgufValueType.UINT64, 2n ** 63n + 5n],
      ["t.i64", GgufValueType.INT64, -(2n ** 40n)],
      ["t.str", GgufValueType.STRING, "héllo ▁ 🦙"],
      ["t.arr_i32", GgufValueType.ARRAY, [1, -2, 3], GgufValueType.INT32],
      ["t.arr_f32", GgufValueType.ARRAY, [0.5, -1.5], GgufValueType.FLOAT32],
      ["t.arr_str", GgufValueType.ARRAY, ["a", "", "Ġ t", "日本"], GgufValueType.STRING],
      ["t.arr_bool", GgufValueType.ARRAY, [true, false], GgufValueType.BOOL],
      ["t.arr_u64", GgufValueType.ARRAY, [1n, 2n ** 60n], GgufValueType.UINT64],
      [
        "t.arr_arr",
        GgufValueType.ARRAY,
        [
          [GgufValueType.ARRAY, [1, 2], GgufValueType.UINT8],
          [GgufValueType.ARRAY, ["x"], GgufValueType.STRING],
        ],
        GgufValueType.ARRAY,
      ],
    ],
    [
      { name: "w32", dims: [3, 2], type: 0, data: f32Bytes([1, 2, 3, 4, 5, 6]) },
      { name: "w16", dims: [8], type: 1, data: Buffer.from(new Uint16Array(f16Bits).buffer) },
      { name: "wbf16", dims: [2], type: 30, data: Buffer.from(new Uint16Array([0x3f80, 0xc040]).buffer) },
      { name: "wq8", dims: [32, 1], type: 8, data: Buffer.alloc(34) },
    ],
    alignment,
  );
}

test("synthetic GGUF: every metadata type, alignment, f32/f16/bf16 tensors", () => {
  for (const alignment of [32, 64]) {
    const p = path.join(tmp, `synthetic-${alignment}.gguf`);
    writeFileSync(p, syntheticFile(alignment));
    const g = GgufFile.open(p);
    assert.equal(g.version, 3);
    assert.equal(g.alignment, alignment);
    assert.equal(g.dataOffset % alignment, 0);
    assert.equal(g.string("general.architecture"), "llama");
    assert.equal(g.get("t.u8"), 250);
    assert.equal(g.get("t.i8"), -100);
    assert.equal(g.get("t.u16"), 60000);
    assert.equal(g.get("t.i16"), -30000);
    assert.equal(g.get("t.u32"), 4000000000);
    assert.equal(g.get("t.i32"), -2000000000);
    assert.equal(g.get("t.f32"), 0.25);
    assert.equal(g.get("t.f64"), 1e-300);
    assert.equal(g.get("t.bool"), true);
    assert.equal(g.bool("t.bool", false), true);
    assert.equal(g.get("t.u64"), 2n ** 63n + 5n);
    assert.equal(g.get("t.i64"), -(2n ** 40n));
    assert.equal(g.number("t.i64"), -(2 ** 40));
    assert.equal(g.string("t.str"), "héllo ▁ 🦙");
    assert.deepEqual(Array.from(g.get("t.arr_i32") as Int32Array), [1, -2, 3]);
    assert.ok(g.get("t.arr_i32") instanceof Int32Array);
    assert.deepEqual(Array.from(g.get("t.arr_f32") as Float32Array), [0.5, -1.5]);
    assert.deepEqual(g.strings("t.arr_str"), ["a", "", "Ġ t", "日本"]);
    assert.deepEqual(g.get("t.arr_bool"), [true, false]);
    assert.deepEqual(Array.from(g.get("t.arr_u64") as BigUint64Array), [1n, 2n ** 60n]);
    const nested = g.get("t.arr_arr") as unknown[];
    assert.deepEqual(Array.from(nested[0] as Uint8Array), [1, 2]);
    assert.deepEqual(nested[1], ["x"]);
    assert.equal(g.metadata.get("t.arr_str")!.arrayType, GgufValueType.STRING);

    assert.deepEqual(
      g.tensors.map((t) => t.name),
      ["w32", "w16", "wbf16", "wq8"],
    );
    const w32 = g.tensorInfo("w32");
    assert.deepEqual(w32.dims, [3, 2]);
    assert.deepEqual(w32.shape, [2, 3]);
    assert.equal(w32.typeName, "F32");
    assert.deepEqual(Array.from(g.readTensor("w32")), [1, 2, 3, 4, 5, 6]);
    const w16 = g.readTensor("w16");
    for (let i = 0; i < f16Vals.length; i++)
      assert.ok(Math.abs(w16[i]! - f16Vals[i]!) <= 1e-3 * Math.abs(f16Vals[i]!));
    assert.equal(w16[5], 2 ** -24);
    assert.deepEqual(Array.from(g.readTensor("wbf16")), [1, -3]);
    assert.equal(g.tensorInfo("wq8").nbytes, 34);
    assert.throws(
      () => g.readTensor("wq8"),
      (e: unknown) =>
        e instanceof FileFormatError &&
        e.message.includes('"wq8"') &&
        e.message.includes("Q8_0") &&
        e.message.startsWith(p),
    );
    assert.throws(() => g.tensorInfo("nope"), FileFormatError);
  }
});

test("f16ToF32 handles subnormals, infinities and NaN", () => {
  const f16ToF32 = (h: number): number => f16ArrayToF32(Uint16Array.of(h))[0]!;
  assert.equal(f16ToF32(0x7c00), Number.POSITIVE_INFINITY);
  assert.equal(f16ToF32(0xfc00), Number.NEGATIVE_INFINITY);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  assert.equal(f16ToF32(0x03ff), 1023 * 2 ** -24);
  assert.ok(Object.is(f16ToF32(0x8000), -0));
});

function assertOneLine(fn: () => unknown, file: string, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${String(e)}`);
    assert.ok(!e.message.includes("\n"), `message has several lines: ${e.message}`);
    assert.ok(e.message.startsWith(`${file}: `), `message does not start with the path: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test("corrupt GGUF: bad magic, truncation anywhere, bad version -> one-line FileFormatError with the path", () => {
  const good = syntheticFile(32);
  const bad = Buffer.from(good);
  bad.write("GGUX", 0, "latin1");
  const pBad = path.join(tmp, "badmagic.gguf");
  writeFileSync(pBad, bad);
  assertOneLine(() => GgufFile.open(pBad), pBad, /not a GGUF file/);

  const pTiny = path.join(tmp, "tiny.gguf");
  writeFileSync(pTiny, Buffer.from("GG"));
  assertOneLine(() => GgufFile.open(pTiny), pTiny, /not a GGUF file/);

  const v1 = Buffer.from(good);
  v1.writeUInt32LE(1, 4);
  const pV1 = path.join(tmp, "v1.gguf");
  writeFileSync(pV1, v1);
  assertOneLine(() => GgufFile.open(pV1), pV1, /version 1/);

  // Cut the file at many points: in the header, in metadata, in tensor infos and in tensor data.
  const pCut = path.join(tmp, "cut.gguf");
  const cuts = [4, 10, 23, 30, 100, 200, 400, good.length - 40, good.length - 1];
  for (const n of cuts) {
    writeFileSync(pCut, good.subarray(0, n));
    assertOneLine(() => GgufFile.open(pCut), pCut, /truncated/);
  }
  assertOneLine(
    () => GgufFile.open(path.join(tmp, "missing.gguf")),
    path.join(tmp, "missing.gguf"),
    /cannot open/,
  );
});

test("corrupt GGUF: absurd counts and unknown value types", () => {
  const w = new W();
  w.raw(Buffer.from("GGUF", "latin1"));
  w.u32(3);
  w.u64(0);
  w.u64(2n ** 40n);
  const p = path.join(tmp, "absurd.gguf");
  writeFileSync(p, w.done());
  assertOneLine(() => GgufFile.open(p), p, /truncated/);

  // value type 13 does not exist (the writer emits no value bytes for it)
  const bad = writeGguf([["x", 13 as GgufValueType, 0]], []);
  const p2 = path.join(tmp, "badtype.gguf");
  writeFileSync(p2, Buffer.concat([bad, Buffer.alloc(8)]));
  assertOneLine(() => GgufFile.open(p2), p2, /unknown metadata value type 13/);
});

test("fuzz regression: a key or tensor name with a control character is refused in one line", () => {
  // Before: accepted, and every later message quoting the name (here or in the converter) broke lines.
  const p = path.join(tmp, "control.gguf");
  writeFileSync(p, writeGguf([["general.\nname", GgufValueType.UINT32, 1]], []));
  assertOneLine(() => GgufFile.open(p), p, /metadata key #0 "general\.\\nname" contains a control character/);
  writeFileSync(p, writeGguf([], [{ name: "w\r1", dims: [1], type: 0, data: f32Bytes([1]) }]));
  assertOneLine(() => GgufFile.open(p), p, /tensor name #0 "w\\r1" contains a control character/);
});

test("fuzz regression: general.alignment must be an integer power of two", () => {
  // Before: the test `v & (v - 1)` truncates to 32 bits, so 0.5 and 2^40 + 2^33 passed as powers of two.
  const p = path.join(tmp, "alignment.gguf");
  const tensor = { name: "w", dims: [1], type: 0, data: f32Bytes([1]) };
  // Before: a string value was also quoted raw, line break included.
  for (const [type, v] of [
    [GgufValueType.FLOAT32, 0.5],
    [GgufValueType.FLOAT64, 2 ** 40 + 2 ** 33],
    [GgufValueType.STRING, "a\nb"],
  ] as const) {
    writeFileSync(p, writeGguf([["general.alignment", type, v]], [tensor]));
    assertOneLine(() => GgufFile.open(p), p, /general\.alignment must be a power of two/);
  }
});

test("fuzz regression: an array longer than the rest of a 4 GiB file is refused before any allocation", () => {
  // Before: only lengths above the file size were refused, so in a file over 4 GiB a corrupt length
  // of 2^32 + 1 strings reached `new Array(n)`: RangeError "Invalid array length". (A sparse file.)
  const w = new W();
  w.raw(Buffer.from("GGUF", "latin1"));
  w.u32(3);
  w.u64(0);
  w.u64(1);
  w.str("k");
  w.u32(GgufValueType.ARRAY);
  w.u32(GgufValueType.STRING);
  w.u64(2n ** 32n + 1n);
  const p = path.join(tmp, "long-array.gguf");
  writeFileSync(p, w.done());
  truncateSync(p, 2 ** 32 + 4096);
  try {
    assertOneLine(
      () => GgufFile.open(p),
      p,
      /array "k" has 4294967297 elements, more than the \d+ bytes left/,
    );
  } finally {
    rmSync(p);
  }
});

test("fuzz regression: tokenizer errors from GGUF metadata are one line naming the file", () => {
  const p = path.join(tmp, "tokenizer.gguf");
  const tokens = ["<unk>", "<s>", "</s>", "a"];
  const vocab = (model: string, list = tokens): Parameters<typeof writeGguf>[0] => [
    ["tokenizer.ggml.model", GgufValueType.STRING, model],
    ["tokenizer.ggml.tokens", GgufValueType.ARRAY, list, GgufValueType.STRING],
    ["tokenizer.ggml.scores", GgufValueType.ARRAY, list.map((_, i) => -i), GgufValueType.FLOAT32],
  ];
  // Before: the model name was quoted raw, line break included.
  writeFileSync(p, writeGguf(vocab("llama\n2"), []));
  assertOneLine(() => tokenizerFromGguf(GgufFile.open(p)), p, /tokenizer model "llama\\n2" is not supported/);
  // Before: "vocabulary has token "a" twice", naming no file.
  writeFileSync(p, writeGguf(vocab("llama", [...tokens, "a"]), []));
  assertOneLine(() => tokenizerFromGguf(GgufFile.open(p)), p, /token "a" twice/);
});

test("fuzz regression: a directory given as a GGUF file is a one-line FileFormatError", () => {
  // Before: a directory opens on Linux, and the first read threw a bare EISDIR (convert gguf --model DIR).
  const dir = mkdtempSync(path.join(tmp, "folder-"));
  assertOneLine(() => GgufFile.open(dir), dir, /not a file \(a directory or a device\?\)/);
});

test("stories260K.gguf: llama metadata and tensor directory", { skip: SKIP }, () => {
  const g = GgufFile.open(path.join(storiesDir, "stories260K.gguf"));
  assert.equal(g.version, 3);
  assert.equal(g.string("general.architecture"), "llama");
  assert.equal(g.number("llama.embedding_length"), 64);
  assert.equal(g.number("llama.feed_forward_length"), 172);
  assert.equal(g.number("llama.block_count"), 5);
  assert.equal(g.number("llama.attention.head_count"), 8);
  assert.equal(g.number("llama.attention.head_count_kv"), 4);
  assert.equal(g.number("llama.rope.dimension_count"), 8);
  // llama.cpp's llama2.c converter writes its default context (128), not the model's seq_len 512.
  assert.equal(g.number("llama.context_length"), 128);
  assert.ok(Math.abs(g.number("llama.attention.layer_norm_rms_epsilon") - 1e-5) < 1e-10);
  assert.equal(g.string("tokenizer.ggml.model"), "llama");
  assert.equal(g.strings("tokenizer.ggml.tokens").length, 512);
  assert.equal(g.tensors.length, 3 + 5 * 9);
  assert.ok(g.tensors.every((t) => t.typeName === "F32"));
  const q = g.tensorInfo("blk.0.attn_q.weight");
  assert.deepEqual(q.dims, [64, 64]);
  const k = g.tensorInfo("blk.0.attn_k.weight");
  assert.deepEqual(k.dims, [64, 32]); // ne[0] = in (row length), ne[1] = out
  assert.deepEqual(k.shape, [32, 64]); // PyTorch [out, in]
  assert.deepEqual(g.tensorInfo("blk.3.ffn_down.weight").shape, [64, 172]);
  assert.deepEqual(g.tensorInfo("blk.3.ffn_gate.weight").shape, [172, 64]);
  assert.deepEqual(g.tensorInfo("token_embd.weight").shape, [512, 64]);
});

test("stories260K.gguf tensors equal stories260K.bin (q/k in llama2.c's interleaved RoPE layout)", {
  skip: SKIP,
}, () => {
  const g = GgufFile.open(path.join(storiesDir, "stories260K.gguf"));
  const raw = readLlama2cCheckpoint(path.join(storiesDir, "stories260K.bin"), { hfRopeLayout: false });
  const hf = readLlama2cCheckpoint(path.join(storiesDir, "stories260K.bin"));
  const t = (m: typeof raw, n: string) => m.tensors.get(n)!.data;
  assert.deepEqual(g.readTensor("token_embd.weight"), t(raw, "model.embed_tokens.weight"));
  // tied model: the converter wrote output.weight = the embedding table
  assert.deepEqual(g.readTensor("output.weight"), t(raw, "model.embed_tokens.weight"));
  assert.deepEqual(g.readTensor("output_norm.weight"), t(raw, "model.norm.weight"));
  const pairs: [string, string][] = [
    ["attn_q", "self_attn.q_proj"],
    ["attn_k", "self_attn.k_proj"],
    ["attn_v", "self_attn.v_proj"],
    ["attn_output", "self_attn.o_proj"],
    ["attn_norm", "input_layernorm"],
    ["ffn_norm", "post_attention_layernorm"],
    ["ffn_gate", "mlp.gate_proj"],
    ["ffn_down", "mlp.down_proj"],
    ["ffn_up", "mlp.up_proj"],
  ];
  for (let l = 0; l < 5; l++) {
    for (const [gn, hn] of pairs) {
      const name = `model.layers.${l}.${hn}.weight`;
      const gt = g.readTensor(`blk.${l}.${gn}.weight`);
      assert.deepEqual(gt, t(raw, name), `blk.${l}.${gn} vs ${name}`);
      assert.deepEqual(g.tensorInfo(`blk.${l}.${gn}.weight`).shape, hf.tensors.get(name)!.shape);
    }
    // GGUF keeps llama2.c's (= Meta's) interleaved layout: HF-layout weights must be un-permuted.
    const q = g.readTensor(`blk.${l}.attn_q.weight`);
    const k = g.readTensor(`blk.${l}.attn_k.weight`);
    assert.notDeepEqual(q, t(hf, `model.layers.${l}.self_attn.q_proj.weight`));
    assert.deepEqual(q, permuteRopeRows(t(hf, `model.layers.${l}.self_attn.q_proj.weight`), 8, 64, "fromHf"));
    assert.deepEqual(k, permuteRopeRows(t(hf, `model.layers.${l}.self_attn.k_proj.weight`), 4, 64, "fromHf"));
  }
});

test("truncated and bad-magic copies of stories260K.gguf", { skip: SKIP }, () => {
  const good = readFileSync(path.join(storiesDir, "stories260K.gguf"));
  const p = path.join(tmp, "stories-cut.gguf");
  for (const n of [3, 20, 1000, 14000, 14176 + 100, good.length - 4]) {
    writeFileSync(p, good.subarray(0, n));
    assertOneLine(() => GgufFile.open(p), p, n < 4 ? /not a GGUF file/ : /truncated/);
  }
  const bad = Buffer.from(good);
  bad[0] = 0x47;
  bad[3] = 0x00;
  writeFileSync(p, bad);
  assertOneLine(() => GgufFile.open(p), p, /not a GGUF file/);
});

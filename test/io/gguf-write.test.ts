/**
 * GGUF writer (io/gguf-write.ts) read back by the reader (io/gguf.ts): every metadata value type,
 * arrays, tensor dims and offsets, alignment, f32/f16/bf16 values, and q8_0 blocks decoded by hand.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { f16ToF32 } from "../../src/graph/half.js";
import { GgufFile, GgufValueType } from "../../src/io/gguf.js";
import { GGML_TYPE_Q8_0, meta, quantizeQ8_0, writeGguf } from "../../src/io/gguf-write.js";
import { LoraTsError } from "../../src/util/errors.js";

const tmp = mkdtempSync(join(tmpdir(), "lora-ts-gguf-write-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function ramp(n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + 1) * scale);
}

/** Dequantizes ggml Q8_0 bytes: x = d · q per block. */
function dequantQ8_0(b: Uint8Array): Float32Array {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Float32Array((b.length / 34) * 32);
  for (let k = 0; k < b.length / 34; k++) {
    const d = f16ToF32(Uint16Array.of(view.getUint16(k * 34, true)))[0]!;
    for (let j = 0; j < 32; j++) out[k * 32 + j] = d * view.getInt8(k * 34 + 2 + j);
  }
  return out;
}

test("every metadata value type and array kind reads back as written", () => {
  const path = join(tmp, "meta.gguf");
  writeGguf(
    path,
    [
      meta.str("general.architecture", "llama"),
      meta.u8("t.u8", 250),
      meta.i8("t.i8", -5),
      meta.u16("t.u16", 65000),
      meta.i16("t.i16", -300),
      meta.u32("t.u32", 4_000_000_000),
      meta.i32("t.i32", -7),
      meta.f32("t.f32", 1e-5),
      meta.f64("t.f64", Math.PI),
      meta.u64("t.u64", 2n ** 40n),
      meta.i64("t.i64", -(2n ** 40n)),
      meta.bool("t.bool", true),
      meta.str("t.str", "héllo ▁ wörld"),
      meta.strs("t.strs", ["a", "", "▁b c"]),
      meta.f32s("t.f32s", [0.5, -1, 3]),
      meta.i32s("t.i32s", [1, -2, 3]),
      { key: "t.bools", type: GgufValueType.ARRAY, arrayType: GgufValueType.BOOL, value: [true, false] },
    ],
    [],
  );
  const g = GgufFile.open(path);
  assert.equal(g.version, 3);
  assert.equal(g.string("general.architecture"), "llama");
  assert.equal(g.get("t.u8"), 250);
  assert.equal(g.get("t.i8"), -5);
  assert.equal(g.get("t.u16"), 65000);
  assert.equal(g.get("t.i16"), -300);
  assert.equal(g.get("t.u32"), 4_000_000_000);
  assert.equal(g.get("t.i32"), -7);
  assert.equal(g.get("t.f32"), Math.fround(1e-5));
  assert.equal(g.get("t.f64"), Math.PI);
  assert.equal(g.get("t.u64"), 2n ** 40n);
  assert.equal(g.get("t.i64"), -(2n ** 40n));
  assert.equal(g.get("t.bool"), true);
  assert.equal(g.get("t.str"), "héllo ▁ wörld");
  assert.deepEqual(g.strings("t.strs"), ["a", "", "▁b c"]);
  assert.deepEqual([...(g.get("t.f32s") as Float32Array)], [0.5, -1, 3]);
  assert.deepEqual([...(g.get("t.i32s") as Int32Array)], [1, -2, 3]);
  assert.deepEqual(g.get("t.bools"), [true, false]);
});

test("tensors: dims reversed, aligned offsets, f32 exact, f16/bf16 rounded, q8_0 in ggml's block layout", () => {
  for (const alignment of [32, 64]) {
    const path = join(tmp, `t${alignment}.gguf`);
    const a = ramp(3 * 5);
    const b = ramp(7, 10);
    const c = ramp(2 * 64, 3);
    const d = ramp(9, 2);
    writeGguf(
      path,
      [meta.str("general.architecture", "llama"), meta.u32("general.alignment", alignment)],
      [
        { name: "a", shape: [3, 5], type: "f32", data: () => a },
        { name: "b", shape: [7], type: "f16", data: () => b },
        { name: "c", shape: [2, 64], type: "q8_0", data: () => c },
        { name: "d", shape: [9], type: "bf16", data: () => d },
      ],
    );
    const g = GgufFile.open(path);
    assert.equal(g.alignment, alignment);
    assert.deepEqual(g.tensorInfo("a").dims, [5, 3]);
    assert.deepEqual(g.tensorInfo("a").shape, [3, 5]);
    for (const t of g.tensors) assert.equal(t.offset % alignment, 0, t.name);
    assert.deepEqual(g.readTensor("a"), a);
    const bb = g.readTensor("b");
    for (let i = 0; i < b.length; i++) assert.ok(Math.abs(bb[i]! - b[i]!) <= Math.abs(b[i]!) * 1e-3);
    const dd = g.readTensor("d");
    for (let i = 0; i < d.length; i++) assert.ok(Math.abs(dd[i]! - d[i]!) <= Math.abs(d[i]!) * 1e-2);
    const ci = g.tensorInfo("c");
    assert.equal(ci.type, GGML_TYPE_Q8_0);
    assert.equal(ci.nbytes, 4 * 34);
    const cc = dequantQ8_0(g.readTensorBytes("c"));
    // Error per value at most half a step (d/2) plus the f16 rounding of d.
    for (let k = 0; k < 4; k++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(c[k * 32 + j]!));
      for (let j = 0; j < 32; j++) {
        const i = k * 32 + j;
        assert.ok(Math.abs(cc[i]! - c[i]!) <= (amax / 127) * 0.51 + amax * 1e-3, `c[${i}]`);
      }
    }
  }
});

test("q8_0 blocks: d = max|x|/127 as f16, q = round(x/d) with halves away from zero, zero blocks stay zero", () => {
  const x = new Float32Array(64);
  x[0] = 127;
  x[1] = -127;
  x[2] = 2.5; // 2.5 / 1 -> 3 (roundf), not 2
  x[3] = -2.5; // -> -3
  x[4] = 0.4;
  const q = quantizeQ8_0(x);
  const view = new DataView(q.buffer);
  assert.equal(f16ToF32(Uint16Array.of(view.getUint16(0, true)))[0], 1);
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((j) => view.getInt8(2 + j)),
    [127, -127, 3, -3, 0],
  );
  assert.equal(view.getUint16(34, true), 0);
  for (let j = 0; j < 32; j++) assert.equal(view.getInt8(36 + j), 0);
});

test("written atomically: a failed write leaves the old file and no temporary file", () => {
  const dir = join(tmp, "atomic");
  rmSync(dir, { recursive: true, force: true });
  const path = join(tmp, "atomic.gguf");
  writeGguf(path, [meta.str("general.name", "old")], []);
  assert.throws(
    () =>
      writeGguf(
        path,
        [meta.str("general.name", "new")],
        [
          {
            name: "bad",
            shape: [4],
            type: "f32",
            data: () => {
              throw new LoraTsError("boom");
            },
          },
        ],
      ),
    /boom/,
  );
  assert.equal(GgufFile.open(path).string("general.name"), "old");
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.endsWith(".tmp")),
    [],
  );
  assert.ok(!existsSync(dir));
});

test("bad input is one line: q8_0 rows not a multiple of 32, duplicate names, wrong value count", () => {
  const path = join(tmp, "bad.gguf");
  const one = (n: number) => () => new Float32Array(n);
  assert.throws(
    () => writeGguf(path, [], [{ name: "w", shape: [2, 48], type: "q8_0", data: one(96) }]),
    /"w".*multiple of 32/,
  );
  assert.throws(() => writeGguf(path, [meta.u32("k", 1), meta.u32("k", 2)], []), /"k" given twice/);
  assert.throws(
    () =>
      writeGguf(
        path,
        [],
        [
          { name: "w", shape: [2], type: "f32", data: one(2) },
          { name: "w", shape: [2], type: "f32", data: one(2) },
        ],
      ),
    /"w" given twice/,
  );
  assert.throws(
    () => writeGguf(path, [], [{ name: "w", shape: [2, 3], type: "f32", data: one(5) }]),
    /5 values for shape \[2,3\]/,
  );
  assert.ok(!existsSync(path));
});

test("metadata larger than the header buffer's first 64 KiB reads back (a vocabulary of 50,000 tokens)", () => {
  const path = join(tmp, "big.gguf");
  const tokens = Array.from({ length: 50_000 }, (_, i) => `tok${i}`);
  const scores = Float32Array.from(tokens, (_, i) => -i);
  writeGguf(
    path,
    [meta.strs("tokenizer.ggml.tokens", tokens), meta.f32s("tokenizer.ggml.scores", scores)],
    [],
  );
  const g = GgufFile.open(path);
  assert.deepEqual(g.strings("tokenizer.ggml.tokens"), tokens);
  assert.deepEqual(g.get("tokenizer.ggml.scores"), scores);
});

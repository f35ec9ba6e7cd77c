import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { f16ToF32 } from "../../src/graph/half.js";
import { openSafetensors, type TensorToWrite, writeSafetensors } from "../../src/io/safetensors.js";
import { FileFormatError, LoraTsError } from "../../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "lora-ts-safetensors-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tmpPath = (stem: string): string => join(dir, `${stem}-${counter++}.safetensors`);

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Random float32 bit patterns with the special values mixed in. */
function f32Data(n: number, seed: number): Float32Array {
  const rand = rng(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = Math.floor(rand() * 2 ** 32);
  // -0, +inf, -inf, quiet NaN, signalling NaN, negative NaN with payload, smallest and largest subnormal.
  bits.set([0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffc12345, 0x00000001, 0x007fffff]);
  return new Float32Array(bits.buffer);
}

/** Random 16-bit patterns with the float16 and bfloat16 special values mixed in. */
function u16Data(n: number, seed: number): Uint16Array {
  const rand = rng(seed);
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(rand() * 65536);
  a.set([0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0x0001, 0x03ff, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffff]);
  return a;
}

/** A file with a hand-made header (object or raw text) and data region. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: bigint): string {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const h = Buffer.from(text, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(h.byteLength));
  const p = tmpPath("raw");
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

/** Asserts that opening `p` fails with a one-line FileFormatError naming the file and matching `re`. */
function assertOpenFails(p: string, ...patterns: RegExp[]): void {
  assert.throws(
    () => openSafetensors(p),
    (e: unknown) => {
      assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${e}`);
      assert.ok(!e.message.includes("\n"), `message has a newline: ${JSON.stringify(e.message)}`);
      assert.ok(e.message.startsWith(`${p}: `), `message does not start with the path: ${e.message}`);
      for (const re of patterns) assert.match(e.message, re);
      return true;
    },
  );
}

describe("safetensors round trip", () => {
  test("F32, F16, BF16, F64, I64 and small int types are bit-exact, with metadata", () => {
    const p = tmpPath("roundtrip");
    const tensors: TensorToWrite[] = [
      { name: "w.f32", dtype: "float32", shape: [7, 9], data: f32Data(63, 1) },
      { name: "w.f16", dtype: "float16", shape: [5, 3, 3], data: u16Data(45, 2) },
      { name: "w.bf16", dtype: "bfloat16", shape: [33], data: u16Data(33, 3) },
      { name: "w.f64", dtype: "float64", shape: [3], data: Float64Array.of(-0, Number.NaN, 1e-310) },
      {
        name: "ids",
        dtype: "int64",
        shape: [2, 3],
        data: BigInt64Array.of(0n, -1n, 2n ** 62n, -(2n ** 63n), 2n ** 63n - 1n, 12345678901234n),
      },
      { name: "i32", dtype: "int32", shape: [2], data: Int32Array.of(-2147483648, 7) },
      { name: "i8", dtype: "int8", shape: [3], data: Int8Array.of(-128, 0, 127) },
      { name: "mask", dtype: "bool", shape: [3], data: Uint8Array.of(1, 0, 1) },
      { name: "u8", dtype: "uint8", shape: [1], data: Uint8Array.of(255) },
      { name: "scalar", dtype: "float32", shape: [], data: Float32Array.of(3.5) },
      { name: "empty", dtype: "float32", shape: [0, 4], data: new Float32Array(0) },
    ];
    const metadata = { format: "pt", "lora-ts.rank": "8", unicode: "héllo ✓", empty: "" };
    writeSafetensors(p, tensors, metadata);

    const f = openSafetensors(p);
    try {
      assert.deepEqual(f.metadata, metadata);
      assert.equal(f.path, p);
      assert.deepEqual([...f.tensors.keys()].sort(), tensors.map((t) => t.name).sort());
      for (const t of tensors) {
        const info = f.info(t.name);
        assert.equal(info.name, t.name);
        assert.equal(info.dtype, t.dtype);
        assert.deepEqual(info.shape, t.shape);
        assert.equal(info.byteLength, t.data.byteLength);
        const raw = f.read(t.name);
        assert.ok(bytesOf(raw).equals(bytesOf(t.data)), `${t.name}: bytes differ`);
        const typed = f.readTyped(t.name);
        assert.equal(typed.constructor, t.data.constructor, `${t.name}: typed array class`);
        assert.ok(bytesOf(typed).equals(bytesOf(t.data)), `${t.name}: typed bytes differ`);
      }
      // readFloat32 into a caller's scratch (widened in place for bf16) equals the plain read, and a
      // longer scratch keeps its tail.
      for (const name of ["w.f32", "w.bf16"]) {
        const plain = f.readFloat32(name);
        const scratch = new Float32Array(plain.length + 2).fill(7);
        const got = f.readFloat32(name, scratch);
        assert.ok(bytesOf(got).equals(bytesOf(plain)), `${name}: readFloat32 with scratch differs`);
        assert.equal(got.buffer, scratch.buffer, `${name}: the scratch is used`);
        assert.deepEqual([...scratch.subarray(plain.length)], [7, 7], `${name}: the scratch's tail`);
      }
      assert.equal(f.info("w.bf16").stDtype, "BF16");
      assert.equal(f.info("mask").stDtype, "BOOL");
      assert.equal(f.info("ids").stDtype, "I64");
    } finally {
      f.close();
    }
  });

  test("readFloat32 widens F16, BF16 and F64, and rejects integer tensors", () => {
    const p = tmpPath("float32");
    writeSafetensors(p, [
      { name: "h", dtype: "float16", shape: [3], data: Uint16Array.of(0x3c00, 0xc100, 0x0001) },
      { name: "b", dtype: "bfloat16", shape: [2], data: Uint16Array.of(0x3f80, 0xc020) },
      { name: "d", dtype: "float64", shape: [2], data: Float64Array.of(0.5, -1e300) },
      { name: "f", dtype: "float32", shape: [1], data: Float32Array.of(0.25) },
      { name: "n", dtype: "int64", shape: [1], data: BigInt64Array.of(1n) },
      { name: "r", dtype: "float16", shape: [200], data: u16Data(200, 9) },
    ]);
    const f = openSafetensors(p);
    try {
      assert.deepEqual([...f.readFloat32("h")], [1, -2.5, 2 ** -24]);
      assert.deepEqual([...f.readFloat32("b")], [1, -2.5]);
      assert.deepEqual([...f.readFloat32("d")], [0.5, Number.NEGATIVE_INFINITY]);
      assert.deepEqual([...f.readFloat32("f")], [0.25]);
      assert.ok(bytesOf(f.readFloat32("r")).equals(bytesOf(f16ToF32(u16Data(200, 9)))));
      assert.throws(() => f.readFloat32("n"), /"n" has dtype I64, not a float type/);
    } finally {
      f.close();
    }
  });

  test("a Map is accepted, and the layout is aligned and deterministic", () => {
    const p = tmpPath("map");
    const m = new Map<string, Omit<TensorToWrite, "name">>([
      ["z.half", { dtype: "float16", shape: [3], data: Uint16Array.of(1, 2, 3) }],
      ["a.byte", { dtype: "uint8", shape: [5], data: Uint8Array.of(1, 2, 3, 4, 5) }],
      ["m.long", { dtype: "int64", shape: [1], data: BigInt64Array.of(9n) }],
      ["b.float", { dtype: "float32", shape: [3], data: Float32Array.of(1, 2, 3) }],
    ]);
    writeSafetensors(p, m, { k: "v" });
    const bytes = readFileSync(p);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + headerLen) % 8, 0, "data region starts on a multiple of 8");
    assert.equal(bytes.length, 8 + headerLen + 6 + 5 + 8 + 12);
    const f = openSafetensors(p);
    try {
      for (const info of f.tensors.values()) {
        const size = info.byteLength / info.shape.reduce((a, b) => a * b, 1);
        assert.equal(info.byteOffset % size, 0, `${info.name} aligned to its element size`);
      }
      assert.deepEqual([...f.readTyped("m.long")], [9n]);
      assert.deepEqual([...f.readTyped("a.byte")], [1, 2, 3, 4, 5]);
    } finally {
      f.close();
    }
    // Same input, same bytes.
    const p2 = tmpPath("map");
    writeSafetensors(p2, m, { k: "v" });
    assert.ok(readFileSync(p2).equals(bytes));
  });

  test("the header is padded so the data region starts on a multiple of 8, whatever its length", () => {
    for (let len = 1; len <= 8; len++) {
      const p = tmpPath("pad");
      writeSafetensors(p, [
        { name: "x".repeat(len), dtype: "float64", shape: [1], data: Float64Array.of(len) },
      ]);
      const headerLen = Number(readFileSync(p).readBigUInt64LE(0));
      assert.equal((8 + headerLen) % 8, 0, `name length ${len}: header length ${headerLen}`);
      const f = openSafetensors(p);
      assert.deepEqual([...f.readFloat32("x".repeat(len))], [len]);
      f.close();
    }
  });

  test("metadata is optional, and an empty file of tensors is valid", () => {
    const p = tmpPath("empty");
    writeSafetensors(p, []);
    const f = openSafetensors(p);
    assert.equal(f.tensors.size, 0);
    assert.deepEqual(f.metadata, {});
    f.close();
    f.close(); // idempotent
    assert.throws(() => f.info("x"), /no tensor named "x"/);
  });

  test("reading a missing tensor or after close() fails clearly", () => {
    const p = tmpPath("closed");
    writeSafetensors(p, [{ name: "a", dtype: "float32", shape: [1], data: Float32Array.of(1) }]);
    const f = openSafetensors(p);
    assert.throws(
      () => f.read("b"),
      (e: unknown) => e instanceof FileFormatError && /no tensor named "b"/.test(e.message),
    );
    f.close();
    assert.throws(() => f.read("a"), /after close/);
  });
});

describe("safetensors validation on open", () => {
  const valid = () => {
    const p = tmpPath("valid");
    writeSafetensors(p, [
      { name: "a", dtype: "float32", shape: [4], data: Float32Array.of(1, 2, 3, 4) },
      { name: "b", dtype: "float32", shape: [2, 2], data: Float32Array.of(5, 6, 7, 8) },
    ]);
    return p;
  };

  test("missing file", () => {
    assertOpenFails(join(dir, "does-not-exist.safetensors"), /cannot open/, /ENOENT/);
  });

  test("fuzz regression: a directory is a one-line FileFormatError, not a bare EISDIR", () => {
    // Before: a directory opens on Linux, and the first read threw EISDIR (e.g. a shard named ".").
    const sub = join(dir, "a-folder.safetensors");
    mkdirSync(sub);
    assert.throws(
      () => openSafetensors(sub),
      (e: unknown) =>
        e instanceof FileFormatError && e.message === `${sub}: not a file (a directory or a device?)`,
    );
  });

  test("truncated file (last bytes cut)", () => {
    const p = valid();
    truncateSync(p, statSync(p).size - 3);
    assertOpenFails(p, /truncated/, /tensor "[ab]"/);
  });

  test("file shorter than the 8-byte length", () => {
    const p = tmpPath("short");
    writeFileSync(p, Buffer.from([1, 0, 0]));
    assertOpenFails(p, /too short/, /3 bytes/);
  });

  test("header length past the end of the file", () => {
    const p = rawFile({}, new Uint8Array(0), 1000n);
    assertOpenFails(p, /header length 1000 runs past the end of the file/);
    const huge = rawFile({}, new Uint8Array(0), 2n ** 63n + 5n);
    assertOpenFails(huge, /header length \d+ runs past the end/);
  });

  test("invalid JSON, invalid UTF-8, and a header that is not an object", () => {
    assertOpenFails(rawFile('{"a": {"dtype": "F32",'), /not valid JSON/);
    assertOpenFails(rawFile("{not json at all}\n\n"), /not valid JSON/);
    const bad = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]); // {"\xff\xfe":1}
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bad.length));
    const p = tmpPath("utf8");
    writeFileSync(p, Buffer.concat([len, bad]));
    assertOpenFails(p, /not valid UTF-8/);
    assertOpenFails(rawFile("[1, 2]"), /header JSON is an array, expected an object/);
    assertOpenFails(rawFile("null"), /header JSON is null/);
  });

  test("tensor entries with missing fields or wrong types", () => {
    const d = new Uint8Array(16);
    assertOpenFails(rawFile({ w: { dtype: "F32", shape: [4] } }, d), /tensor "w"/, /missing "data_offsets"/);
    assertOpenFails(
      rawFile({ w: { shape: [4], data_offsets: [0, 16] } }, d),
      /tensor "w"/,
      /missing "dtype"/,
    );
    assertOpenFails(rawFile({ w: [1] }, d), /tensor "w": entry is an array/);
    assertOpenFails(
      rawFile({ w: { dtype: 3, shape: [4], data_offsets: [0, 16] } }, d),
      /"w": dtype is a number/,
    );
    assertOpenFails(
      rawFile({ w: { dtype: "F32", shape: [-4], data_offsets: [0, 16] } }, d),
      /"w": shape \[-4\]/,
    );
    assertOpenFails(rawFile({ w: { dtype: "F32", shape: "4", data_offsets: [0, 16] } }, d), /"w": shape "4"/);
    assertOpenFails(rawFile({ w: { dtype: "F32", shape: [2.5], data_offsets: [0, 16] } }, d), /"w": shape/);
    assertOpenFails(
      rawFile({ w: { dtype: "F32", shape: [4], data_offsets: [16, 0] } }, d),
      /"w": data_offsets/,
    );
    assertOpenFails(rawFile({ w: { dtype: "F32", shape: [4], data_offsets: [0] } }, d), /"w": data_offsets/);
  });

  test("unknown dtype names the tensor and the dtype", () => {
    const p = rawFile(
      { "layer.0.w": { dtype: "F8_E4M3", shape: [4], data_offsets: [0, 4] } },
      new Uint8Array(4),
    );
    assertOpenFails(p, /tensor "layer\.0\.w"/, /unknown or unsupported dtype "F8_E4M3"/);
  });

  test("shape x dtype size that disagrees with data_offsets", () => {
    const p = rawFile({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
    assertOpenFails(p, /tensor "w"/, /size mismatch/, /\[3\]/, /needs 12 bytes/, /cover 8 bytes/);
  });

  test("a range past the end of the data region", () => {
    const p = rawFile({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(12));
    assertOpenFails(p, /tensor "w"/, /past the end of the data region \(12 bytes\)/, /truncated/);
  });

  test("overlapping ranges name both tensors", () => {
    const p = rawFile(
      {
        first: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        second: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        ok: { dtype: "U8", shape: [4], data_offsets: [12, 16] },
      },
      new Uint8Array(16),
    );
    assertOpenFails(p, /tensors "first" and "second" overlap/);
    // A range nested inside an earlier, longer one also overlaps.
    const nested = rawFile(
      {
        big: { dtype: "U8", shape: [16], data_offsets: [0, 16] },
        a: { dtype: "U8", shape: [2], data_offsets: [2, 4] },
      },
      new Uint8Array(16),
    );
    assertOpenFails(nested, /"big" and "a" overlap/);
    // Empty tensors take no bytes and overlap nothing.
    const f = openSafetensors(
      rawFile(
        {
          big: { dtype: "U8", shape: [16], data_offsets: [0, 16] },
          e: { dtype: "F32", shape: [0], data_offsets: [4, 4] },
        },
        new Uint8Array(16),
      ),
    );
    assert.equal(f.tensors.size, 2);
    f.close();
  });

  test("__metadata__ must map strings to strings", () => {
    assertOpenFails(rawFile({ __metadata__: { step: 5 } }), /__metadata__/, /"step" has a number value/);
    assertOpenFails(rawFile({ __metadata__: ["x"] }), /__metadata__ is an array/);
    const f = openSafetensors(rawFile('{"__metadata__": {"__proto__": "x", "a": "b"}}'));
    assert.equal(Object.getPrototypeOf(f.metadata), Object.prototype);
    assert.deepEqual(Object.entries(f.metadata), [
      ["__proto__", "x"],
      ["a", "b"],
    ]);
    f.close();
  });

  test("a header padded with trailing spaces is accepted", () => {
    const f = openSafetensors(
      rawFile('{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   ', Uint8Array.of(7, 9)),
    );
    assert.deepEqual([...f.read("w")], [7, 9]);
    f.close();
  });
});

describe("writeSafetensors", () => {
  test("leaves no temp file behind, and replaces an existing file", () => {
    const sub = mkdtempSync(join(dir, "atomic-"));
    const p = join(sub, "model.safetensors");
    writeFileSync(p, "old contents, not safetensors");
    writeSafetensors(p, [{ name: "a", dtype: "float32", shape: [2], data: Float32Array.of(1, 2) }], {
      v: "1",
    });
    assert.deepEqual(readdirSync(sub), ["model.safetensors"]);
    let f = openSafetensors(p);
    assert.deepEqual(f.metadata, { v: "1" });
    assert.deepEqual([...f.readFloat32("a")], [1, 2]);
    f.close();

    writeSafetensors(p, [{ name: "b", dtype: "int32", shape: [1], data: Int32Array.of(42) }], { v: "2" });
    assert.deepEqual(readdirSync(sub), ["model.safetensors"]);
    f = openSafetensors(p);
    assert.deepEqual([...f.tensors.keys()], ["b"]);
    assert.deepEqual(f.metadata, { v: "2" });
    assert.deepEqual([...f.readTyped("b")], [42]);
    f.close();
  });

  test("a reader holding the old file keeps reading the old contents", () => {
    const sub = mkdtempSync(join(dir, "reader-"));
    const p = join(sub, "m.safetensors");
    writeSafetensors(p, [{ name: "a", dtype: "float32", shape: [2], data: Float32Array.of(1, 2) }]);
    const f = openSafetensors(p);
    writeSafetensors(p, [{ name: "a", dtype: "float32", shape: [2], data: Float32Array.of(3, 4) }]);
    assert.deepEqual([...f.readFloat32("a")], [1, 2]);
    f.close();
  });

  test("a failed rename removes the temp file", () => {
    const sub = mkdtempSync(join(dir, "fail-"));
    const target = join(sub, "is-a-directory");
    mkdirSync(target);
    writeFileSync(join(target, "keep"), "x");
    assert.throws(
      () => writeSafetensors(target, [{ name: "a", dtype: "uint8", shape: [1], data: Uint8Array.of(1) }]),
      (e: unknown) =>
        e instanceof LoraTsError && e.message.startsWith(`${target}: `) && !e.message.includes("\n"),
    );
    assert.deepEqual(readdirSync(sub), ["is-a-directory"]);
  });

  test("data that does not match shape x dtype is rejected before any file is made", () => {
    const sub = mkdtempSync(join(dir, "bad-"));
    const p = join(sub, "m.safetensors");
    const bad: [TensorToWrite, RegExp][] = [
      [
        { name: "w.q", dtype: "float32", shape: [2, 3], data: new Float32Array(5) },
        /"w\.q": data has 20 bytes.*needs 24/,
      ],
      [
        { name: "h", dtype: "float16", shape: [4], data: new Float32Array(4) },
        /"h": data is a Float32Array.*Uint16Array/,
      ],
      [{ name: "s", dtype: "int32", shape: [2], data: new Float32Array(2) }, /"s": data is a Float32Array/],
      [{ name: "n", dtype: "float32", shape: [-1], data: new Float32Array(0) }, /"n": shape \[-1\]/],
      [{ name: "__metadata__", dtype: "uint8", shape: [0], data: new Uint8Array(0) }, /reserved/],
    ];
    for (const [t, re] of bad) {
      assert.throws(
        () => writeSafetensors(p, [t]),
        (e: unknown) => e instanceof LoraTsError && re.test(e.message) && !e.message.includes("\n"),
        re.source,
      );
    }
    const dup = { name: "d", dtype: "uint8", shape: [1], data: Uint8Array.of(1) } as const;
    assert.throws(() => writeSafetensors(p, [dup, dup]), /"d": given twice/);
    // Raw bytes are accepted for any dtype when their length fits.
    writeSafetensors(p, [
      { name: "raw", dtype: "bfloat16", shape: [2], data: Uint8Array.of(0x80, 0x3f, 0, 0) },
    ]);
    const f = openSafetensors(p);
    assert.deepEqual([...f.readFloat32("raw")], [1, 0]);
    f.close();
    assert.ok(existsSync(p));
    assert.deepEqual(readdirSync(sub), ["m.safetensors"]);
  });
});

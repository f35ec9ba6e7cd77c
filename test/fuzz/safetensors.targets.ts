/**
 * Fuzz targets for safetensors files (io/safetensors.ts): headers generated field by field (dtype,
 * shape, data_offsets, __metadata__, the u64 header length), and files written by writeSafetensors
 * then mutated. Each input is written to one file per target, opened, and every tensor read back in
 * every way the engine reads tensors (raw, typed, float32).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { isFloat } from "../../src/graph/dtype.js";
import { openSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import { tempDir } from "../models/fixtures.js";
import type { FuzzTarget } from "./harness.js";
import { InputFile } from "./input-file.js";
import { INTERESTING_INTS, interestingJson, mutatedBytes, sometimes } from "./mutate.js";

const dir = tempDir("lora-ts-fuzz-safetensors-");
const input = new InputFile(join(dir, "input.safetensors"));

/** Opens `path` and reads every tensor as raw bytes, as its typed array and, for floats, as float32. */
export function readAllTensors(path: string): void {
  const f = openSafetensors(path);
  try {
    for (const [name, info] of f.tensors) {
      f.read(name);
      f.readTyped(name);
      if (isFloat(info.dtype)) f.readFloat32(name);
    }
  } finally {
    f.close();
  }
}

function readBytes(bytes: Uint8Array): void {
  readAllTensors(input.write(bytes));
}

/** Seeds: every dtype, empty and scalar shapes, metadata, and a file with no tensors. */
function seeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const write = (...args: Parameters<typeof writeSafetensors>) => {
    writeSafetensors(...args);
    out.push(new Uint8Array(readFileSync(args[0])));
  };
  const p = join(dir, "seed.safetensors");
  write(
    p,
    [
      { name: "w", dtype: "float32", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      { name: "h", dtype: "float16", shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
      { name: "b", dtype: "bfloat16", shape: [1, 2], data: new Uint16Array([0x3f80, 0x7f80]) },
      { name: "d", dtype: "float64", shape: [], data: new Float64Array([0.5]) },
      { name: "i", dtype: "int64", shape: [1], data: new BigInt64Array([-1n]) },
      { name: "j", dtype: "int32", shape: [2], data: new Int32Array([7, -7]) },
      { name: "k", dtype: "int8", shape: [3], data: new Int8Array([1, -1, 0]) },
      { name: "u", dtype: "uint8", shape: [0, 4], data: new Uint8Array(0) },
      { name: "t", dtype: "bool", shape: [2], data: new Uint8Array([1, 0]) },
    ],
    { format: "pt", note: "seed" },
  );
  write(p, [
    { name: "model.embed_tokens.weight", dtype: "float32", shape: [4, 2], data: new Float32Array(8) },
  ]);
  write(p, []);
  return out;
}

const SEEDS = seeds();

const dtypeName = fc.oneof(
  fc.constantFrom("F32", "F64", "F16", "BF16", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "f32", ""),
  fc.string({ maxLength: 6 }),
);
const bigNumber = fc.constantFrom(...INTERESTING_INTS.map(Number));
const dim = fc.oneof(
  { weight: 6, arbitrary: fc.nat(8) },
  { weight: 2, arbitrary: bigNumber },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(-1, 0.5, "2", null, 1e308),
  },
);
const offset = fc.oneof(
  { weight: 6, arbitrary: fc.nat(64) },
  { weight: 2, arbitrary: bigNumber },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(-8, 1.5, "0", null),
  },
);
const entry = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record(
      {
        dtype: dtypeName,
        shape: fc.array(dim, { maxLength: 4 }),
        data_offsets: fc.oneof(fc.tuple(offset, offset), fc.array(offset, { maxLength: 3 })),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: interestingJson },
);
const tensorName = fc.oneof(
  fc.constantFrom("w", "__metadata__", "__proto__", "a\nb", ""),
  fc.string({ maxLength: 8 }),
);

/** A header object built from entries, serialised by hand so that "__proto__" stays a key. */
const headerText = fc
  .tuple(
    fc.array(fc.tuple(tensorName, entry), { maxLength: 6 }),
    fc.option(
      fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), interestingJson)),
      {
        nil: undefined,
      },
    ),
  )
  .map(([entries, meta]) => {
    const parts = entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"}`);
    if (meta !== undefined) parts.push(`"__metadata__":${JSON.stringify(meta)}`);
    return `{${parts.join(",")}}`;
  });

/** The 8-byte length: usually right, sometimes any u64. */
const randomFile = fc
  .record({
    header: headerText,
    length: sometimes(
      fc.oneof(fc.constantFrom(...INTERESTING_INTS), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    ),
    data: fc.uint8Array({ maxLength: 160 }),
  })
  .map(({ header, length, data }) => withLength(header, data, length));

function withLength(header: string, data: Uint8Array, length?: bigint): Uint8Array {
  const h = Buffer.from(header, "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(h.length));
  return new Uint8Array(Buffer.concat([prefix, h, data]));
}

const DTYPE_SIZES: Record<string, number> = {
  F32: 4,
  F64: 8,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Well-formed files (tensors packed in order, the data region the right size): reads that succeed. */
const consistentFile = fc
  .record({
    tensors: fc.array(
      fc.record({
        name: tensorName,
        dtype: fc.constantFrom(...Object.keys(DTYPE_SIZES)),
        shape: fc.array(fc.nat(4), { maxLength: 3 }),
      }),
      { maxLength: 5 },
    ),
    metadata: fc.option(
      fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
      {
        nil: undefined,
      },
    ),
    fill: fc.nat(255),
  })
  .map(({ tensors, metadata, fill }) => {
    let offset = 0;
    const parts = tensors.map((t) => {
      const bytes = t.shape.reduce((a, d) => a * d, 1) * DTYPE_SIZES[t.dtype]!;
      const entry = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
      return `${JSON.stringify(t.name)}:${JSON.stringify(entry)}`;
    });
    if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
    return withLength(`{${parts.join(",")}}`, new Uint8Array(offset).fill(fill));
  });

const generatedFile = fc.oneof(consistentFile, randomFile);

/** A file whose header (well-formed JSON) declares the given entry, with `dataBytes` of data. */
function declared(header: Record<string, unknown>, dataBytes = 16, length?: bigint): Uint8Array {
  const h = Buffer.from(JSON.stringify(header), "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(h.length));
  return new Uint8Array(Buffer.concat([prefix, h, Buffer.alloc(dataBytes)]));
}

const HUGE = [
  { name: "header length 2^60", input: declared({}, 16, 2n ** 60n) },
  { name: "header length 2^64 - 1", input: declared({}, 16, 2n ** 64n - 1n) },
  { name: "header length just past the file", input: declared({}, 0, 3n) },
  {
    name: "a tensor of 2^60 bytes",
    input: declared({ w: { dtype: "U8", shape: [2 ** 60], data_offsets: [0, 2 ** 60] } }),
  },
  {
    name: "shape [2^30, 2^30] claiming 2^62 bytes",
    input: declared({ w: { dtype: "F32", shape: [2 ** 30, 2 ** 30], data_offsets: [0, 2 ** 62] } }),
  },
  {
    name: "shape [2^53, 2^53] (product beyond 2^53)",
    input: declared({ w: { dtype: "F32", shape: [2 ** 53, 2 ** 53], data_offsets: [0, 16] } }),
  },
  {
    name: "offsets beyond the file",
    input: declared({ w: { dtype: "F32", shape: [4], data_offsets: [2 ** 40, 2 ** 40 + 16] } }),
  },
  {
    name: "offsets past 2^53",
    input: declared({ w: { dtype: "U8", shape: [1], data_offsets: [2 ** 60, 2 ** 60 + 1] } }),
  },
];

export const safetensorsGenerated: FuzzTarget<Uint8Array> = {
  name: "safetensors: generated headers",
  covers:
    "SafetensorsFile.open + read/readTyped/readFloat32 of every tensor; headers built from dtype/shape/data_offsets/__metadata__ fields and u64 lengths",
  arbitrary: generatedFile,
  run: readBytes,
  size: (b) => b.length,
  explicit: HUGE,
};

export const safetensorsMutated: FuzzTarget<Uint8Array> = {
  name: "safetensors: mutated files",
  covers:
    "the same reads on files written by writeSafetensors (every dtype, metadata, no tensors), byte-mutated",
  arbitrary: fc.oneof(
    { weight: 8, arbitrary: mutatedBytes(SEEDS) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  ),
  run: readBytes,
  size: (b) => b.length,
};

export const targets = [safetensorsGenerated, safetensorsMutated];

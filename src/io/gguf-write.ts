/**
 * GGUF v3 writer (little-endian), the inverse of gguf.ts's reader: header, metadata of every value
 * type (arrays included), tensor infos, padding to `general.alignment` (32 unless the metadata says
 * otherwise), then each tensor's data at an aligned offset.
 *
 * Tensors are given as a shape (row-major, PyTorch order; written reversed as GGUF's dims) and a
 * function producing their float32 values, called one tensor at a time while the data section is
 * written: a multi-GB model never sits in memory whole. Types: F32, F16, BF16, and Q8_0 in ggml's
 * block layout (32 values -> an f16 scale d = max|x|/127, then 32 int8 q = round(x/d)).
 *
 * The file is written under a temporary name in the destination folder and renamed into place, so
 * a kill or a full disk leaves the previous file (or none), never a truncated one.
 */
import { f32ToBf16, f32ToF16 } from "../graph/half.js";
import { writeFileAtomicWith } from "../util/atomic.js";
import { LoraTsError } from "../util/errors.js";
import { GGML_TYPE_BF16, GGML_TYPE_F16, GGML_TYPE_F32, type GgufKV, GgufValueType } from "./gguf.js";

export const GGML_TYPE_Q8_0 = 8;

/** The tensor types this writer encodes, by their names on the command line. */
export type GgufWriteType = "f32" | "f16" | "bf16" | "q8_0";

const TYPE_CODE: Record<GgufWriteType, number> = {
  f32: GGML_TYPE_F32,
  f16: GGML_TYPE_F16,
  bf16: GGML_TYPE_BF16,
  q8_0: GGML_TYPE_Q8_0,
};

export interface GgufTensorToWrite {
  name: string;
  /** Row-major (PyTorch) shape; GGUF stores it reversed (dims[0] = row length). */
  shape: number[];
  type: GgufWriteType;
  /** The values in row-major order; called once, when the tensor's turn comes. */
  data: () => Float32Array;
}

/** Metadata entries, as the reader returns them (GgufKV), built with the `meta` helpers below. */
export type GgufMeta = GgufKV;

/** Short constructors for metadata entries of each type. */
export const meta = {
  u8: (key: string, value: number): GgufMeta => ({ key, type: GgufValueType.UINT8, value }),
  i8: (key: string, value: number): GgufMeta => ({ key, type: GgufValueType.INT8, value }),
  u16: (key: string, value: number): GgufMeta => ({ key, type: GgufValueType.UINT16, value }),
  i16: (key: string, value: number): GgufMeta => ({ key, type: GgufValueType.INT16, value }),
  u32: (key: string, value: number): GgufMeta => ({ key, type: GgufValueType.UINT32, value }),
  i32: (key: string, value: number): GgufMeta => ({ key, type: GgufValueType.INT32, value }),
  f32: (key: string, value: number): GgufMeta => ({ key, type: GgufValueType.FLOAT32, value }),
  f64: (key: string, value: number): GgufMeta => ({ key, type: GgufValueType.FLOAT64, value }),
  u64: (key: string, value: bigint): GgufMeta => ({ key, type: GgufValueType.UINT64, value }),
  i64: (key: string, value: bigint): GgufMeta => ({ key, type: GgufValueType.INT64, value }),
  bool: (key: string, value: boolean): GgufMeta => ({ key, type: GgufValueType.BOOL, value }),
  str: (key: string, value: string): GgufMeta => ({ key, type: GgufValueType.STRING, value }),
  strs: (key: string, value: string[]): GgufMeta => ({
    key,
    type: GgufValueType.ARRAY,
    arrayType: GgufValueType.STRING,
    value,
  }),
  f32s: (key: string, value: ArrayLike<number>): GgufMeta => ({
    key,
    type: GgufValueType.ARRAY,
    arrayType: GgufValueType.FLOAT32,
    value: Float32Array.from(value),
  }),
  i32s: (key: string, value: ArrayLike<number>): GgufMeta => ({
    key,
    type: GgufValueType.ARRAY,
    arrayType: GgufValueType.INT32,
    value: Int32Array.from(value),
  }),
};

/** Growable little-endian byte buffer for the header. */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  /** Reserves n bytes, then writes them; room() comes first because it may replace this.buf. */
  private put(n: number, write: (buf: Buffer, at: number) => unknown): void {
    const at = this.room(n);
    write(this.buf, at);
  }
  u8 = (v: number) => this.put(1, (b, at) => b.writeUInt8(v, at));
  i8 = (v: number) => this.put(1, (b, at) => b.writeInt8(v, at));
  u16 = (v: number) => this.put(2, (b, at) => b.writeUInt16LE(v, at));
  i16 = (v: number) => this.put(2, (b, at) => b.writeInt16LE(v, at));
  u32 = (v: number) => this.put(4, (b, at) => b.writeUInt32LE(v, at));
  i32 = (v: number) => this.put(4, (b, at) => b.writeInt32LE(v, at));
  f32 = (v: number) => this.put(4, (b, at) => b.writeFloatLE(v, at));
  f64 = (v: number) => this.put(8, (b, at) => b.writeDoubleLE(v, at));
  u64 = (v: bigint | number) => this.put(8, (b, at) => b.writeBigUInt64LE(BigInt(v), at));
  i64 = (v: bigint) => this.put(8, (b, at) => b.writeBigInt64LE(v, at));
  raw(b: Uint8Array) {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.raw(b);
  }
  pad(alignment: number) {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.raw(new Uint8Array(n));
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** Writers of each scalar value type; numbers are checked to be numbers, strings strings. */
const SCALARS: Partial<Record<GgufValueType, (b: Bytes, v: unknown) => void>> = {
  [GgufValueType.UINT8]: (b, v) => b.u8(v as number),
  [GgufValueType.INT8]: (b, v) => b.i8(v as number),
  [GgufValueType.UINT16]: (b, v) => b.u16(v as number),
  [GgufValueType.INT16]: (b, v) => b.i16(v as number),
  [GgufValueType.UINT32]: (b, v) => b.u32(v as number),
  [GgufValueType.INT32]: (b, v) => b.i32(v as number),
  [GgufValueType.FLOAT32]: (b, v) => b.f32(v as number),
  [GgufValueType.FLOAT64]: (b, v) => b.f64(v as number),
  [GgufValueType.UINT64]: (b, v) => b.u64(BigInt(v as bigint)),
  [GgufValueType.INT64]: (b, v) => b.i64(BigInt(v as bigint)),
  [GgufValueType.BOOL]: (b, v) => b.u8(v ? 1 : 0),
  [GgufValueType.STRING]: (b, v) => b.str(v as string),
};

function writeScalar(b: Bytes, type: GgufValueType, v: unknown, key: string): void {
  const write = SCALARS[type];
  if (!write) throw new LoraTsError(`GGUF metadata "${key}": cannot write value type ${type}`);
  const want = type === GgufValueType.STRING ? "string" : type === GgufValueType.BOOL ? "boolean" : null;
  const isInt64 = type === GgufValueType.UINT64 || type === GgufValueType.INT64;
  const ok = want
    ? typeof v === want
    : isInt64
      ? typeof v === "bigint" || typeof v === "number"
      : typeof v === "number";
  if (!ok) throw new LoraTsError(`GGUF metadata "${key}": value ${String(v)} does not fit type ${type}`);
  write(b, v);
}

function writeValue(
  b: Bytes,
  type: GgufValueType,
  arrayType: GgufValueType | undefined,
  v: unknown,
  key: string,
) {
  if (type !== GgufValueType.ARRAY) return writeScalar(b, type, v, key);
  if (arrayType === undefined)
    throw new LoraTsError(`GGUF metadata "${key}": an array needs its element type`);
  const items = v as ArrayLike<unknown>;
  b.u32(arrayType);
  b.u64(items.length);
  // Arrays of arrays are legal GGUF but carry no element type in GgufKV, and llama.cpp writes none.
  if (arrayType === GgufValueType.ARRAY)
    throw new LoraTsError(`GGUF metadata "${key}": nested arrays are not supported`);
  for (let i = 0; i < items.length; i++) writeScalar(b, arrayType, items[i], key);
}

/** Bytes of a tensor's data. */
function tensorBytes(t: GgufTensorToWrite): number {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  switch (t.type) {
    case "f32":
      return numel * 4;
    case "f16":
    case "bf16":
      return numel * 2;
    case "q8_0":
      return (numel / 32) * 34;
  }
}

/** float32 -> float16 of one value (round to nearest even), for the q8_0 scales. */
function f16Bits(x: number): number {
  return f32ToF16(Float32Array.of(x))[0]!;
}

/** ggml's Q8_0 (quantize_row_q8_0_ref): per 32 values an f16 scale d = max|x|/127 and round(x/d) as int8. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % 32 !== 0) throw new RangeError(`q8_0 needs a multiple of 32 values, got ${x.length}`);
  const blocks = x.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
    const d = Math.fround(amax / 127);
    const id = d === 0 ? 0 : Math.fround(1 / d);
    view.setUint16(b * 34, f16Bits(d), true);
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b * 32 + j]! * id);
      // C's roundf: halves away from zero (Math.round rounds -2.5 to -2).
      view.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
    }
  }
  return out;
}

function encode(t: GgufTensorToWrite, x: Float32Array): Uint8Array {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (x.length !== numel) {
    throw new LoraTsError(`GGUF tensor "${t.name}": ${x.length} values for shape [${t.shape}]`);
  }
  switch (t.type) {
    case "f32":
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case "f16": {
      const h = f32ToF16(x);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case "bf16": {
      const h = f32ToBf16(x);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case "q8_0":
      return quantizeQ8_0(x);
  }
}

/**
 * Writes a GGUF v3 file at `path` (atomically: temp name + rename). Q8_0 tensors need a row length
 * that is a multiple of 32 (a one-line error names the tensor otherwise).
 */
export function writeGguf(
  path: string,
  metadata: readonly GgufMeta[],
  tensors: readonly GgufTensorToWrite[],
): void {
  const al = metadata.find((m) => m.key === "general.alignment");
  const alignment = typeof al?.value === "number" ? al.value : 32;
  const seen = new Set<string>();
  for (const m of metadata) {
    if (seen.has(m.key)) throw new LoraTsError(`GGUF metadata key "${m.key}" given twice`);
    seen.add(m.key);
  }
  const h = new Bytes();
  h.raw(Buffer.from("GGUF", "latin1"));
  h.u32(3);
  h.u64(tensors.length);
  h.u64(metadata.length);
  for (const m of metadata) {
    h.str(m.key);
    h.u32(m.type);
    writeValue(h, m.type, m.arrayType, m.value, m.key);
  }
  let offset = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new LoraTsError(`GGUF tensor "${t.name}" given twice`);
    names.add(t.name);
    if (t.type === "q8_0" && (t.shape[t.shape.length - 1] ?? 0) % 32 !== 0) {
      throw new LoraTsError(
        `GGUF tensor "${t.name}": q8_0 needs a row length that is a multiple of 32, shape is [${t.shape}]`,
      );
    }
    h.str(t.name);
    h.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) h.u64(d);
    h.u32(TYPE_CODE[t.type]);
    h.u64(offset);
    offset += Math.ceil(tensorBytes(t) / alignment) * alignment;
  }
  h.pad(alignment);

  writeFileAtomicWith(path, (put) => {
    put(h.bytes());
    for (const t of tensors) {
      const bytes = encode(t, t.data());
      put(bytes);
      const pad = (alignment - (bytes.length % alignment)) % alignment;
      if (pad > 0) put(new Uint8Array(pad));
    }
  });
}

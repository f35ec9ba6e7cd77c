/**
 * GGUF reader (llama.cpp's model format, versions 2 and 3, little-endian).
 *
 * Layout: "GGUF" magic, u32 version, u64 tensor count, u64 metadata count; then the metadata
 * key/value pairs (key = u64-length-prefixed UTF-8 string, u32 value type, value); then one info
 * record per tensor (name, u32 n_dims, n_dims × u64 dims, u32 ggml type, u64 offset relative to the
 * data section); then padding to `general.alignment` (default 32); then the data section.
 *
 * GGUF lists dims innermost first: `dims[0]` (ggml's ne[0]) is the length of a row. A PyTorch
 * [out, in] matrix therefore has `dims = [in, out]`; `shape` gives the row-major (PyTorch) order.
 *
 * Only the header is read when a file is opened; tensor data is read on request with fs.readSync
 * at its offset, so multi-GB files are never read whole.
 */

import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { bf16ToF32, f16ToF32 } from "../graph/half.js";
import { FileFormatError } from "../util/errors.js";
import { openForRead } from "../util/files.js";

/** Metadata value types (gguf_type). */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/**
 * A metadata value. u64/i64 scalars are bigint; other numbers are number. Arrays of numbers are
 * typed arrays (u64/i64 → BigUint64Array/BigInt64Array), arrays of strings are string[], arrays of
 * bools are boolean[], arrays of arrays are GgufValue[].
 */
export type GgufValue =
  | number
  | bigint
  | boolean
  | string
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | string[]
  | boolean[]
  | GgufValue[];

export interface GgufKV {
  key: string;
  type: GgufValueType;
  /** Element type when `type` is ARRAY. */
  arrayType?: GgufValueType;
  value: GgufValue;
}

/** ggml tensor types: name, elements per block, bytes per block (where known). */
const GGML_TYPES: Record<number, { name: string; blockSize?: number; typeSize?: number }> = {
  0: { name: "F32", blockSize: 1, typeSize: 4 },
  1: { name: "F16", blockSize: 1, typeSize: 2 },
  2: { name: "Q4_0", blockSize: 32, typeSize: 18 },
  3: { name: "Q4_1", blockSize: 32, typeSize: 20 },
  6: { name: "Q5_0", blockSize: 32, typeSize: 22 },
  7: { name: "Q5_1", blockSize: 32, typeSize: 24 },
  8: { name: "Q8_0", blockSize: 32, typeSize: 34 },
  9: { name: "Q8_1", blockSize: 32, typeSize: 36 },
  10: { name: "Q2_K", blockSize: 256, typeSize: 84 },
  11: { name: "Q3_K", blockSize: 256, typeSize: 110 },
  12: { name: "Q4_K", blockSize: 256, typeSize: 144 },
  13: { name: "Q5_K", blockSize: 256, typeSize: 176 },
  14: { name: "Q6_K", blockSize: 256, typeSize: 210 },
  15: { name: "Q8_K", blockSize: 256, typeSize: 292 },
  16: { name: "IQ2_XXS" },
  17: { name: "IQ2_XS" },
  18: { name: "IQ3_XXS" },
  19: { name: "IQ1_S" },
  20: { name: "IQ4_NL" },
  21: { name: "IQ3_S" },
  22: { name: "IQ2_S" },
  23: { name: "IQ4_XS" },
  24: { name: "I8", blockSize: 1, typeSize: 1 },
  25: { name: "I16", blockSize: 1, typeSize: 2 },
  26: { name: "I32", blockSize: 1, typeSize: 4 },
  27: { name: "I64", blockSize: 1, typeSize: 8 },
  28: { name: "F64", blockSize: 1, typeSize: 8 },
  29: { name: "IQ1_M" },
  30: { name: "BF16", blockSize: 1, typeSize: 2 },
  34: { name: "TQ1_0" },
  35: { name: "TQ2_0" },
  39: { name: "MXFP4" },
};

export const GGML_TYPE_F32 = 0;
export const GGML_TYPE_F16 = 1;
export const GGML_TYPE_BF16 = 30;

/** The ggml name of a tensor type ("F32", "Q4_K", ...; "type 99" when unknown). */
export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? `type ${type}`;
}

export interface GgufTensorInfo {
  name: string;
  /** Dims as stored (ggml ne order, innermost first): dims[0] is the row length. */
  dims: number[];
  /** Row-major (PyTorch) shape: `dims` reversed. */
  shape: number[];
  /** ggml type code (0 = F32, 1 = F16, 30 = BF16, ...). */
  type: number;
  typeName: string;
  /** Number of elements. */
  numel: number;
  /** Offset relative to the start of the data section, as stored. */
  offset: number;
  /** Absolute byte offset in the file. */
  fileOffset: number;
  /** Bytes of data, when the type's block size is known. */
  nbytes?: number;
}

const MAGIC = 0x46554747; // "GGUF" little-endian

/** A key or tensor name for a one-line message: quoted, escaped, and cut if long. */
function q(name: string): string {
  const s = JSON.stringify(name);
  return s.length > 80 ? `${s.slice(0, 76)}..."` : s;
}

/** Fewest bytes one array element of a type takes: arrays longer than the rest of the file are refused early. */
function minItemBytes(type: number): number {
  if (type === GgufValueType.STRING) return 8; // the u64 length
  if (type === GgufValueType.ARRAY) return 12; // u32 type + u64 length
  return 1;
}

const DEFAULT_ALIGNMENT = 32;

/** Sequential little-endian reader over a file, fetching chunks with readSync. */
class ChunkReader {
  private buf = Buffer.alloc(0);
  private bufStart = 0; // file offset of buf[0]
  pos = 0; // absolute file offset of the next read

  constructor(
    private readonly fd: number,
    readonly path: string,
    readonly fileSize: number,
  ) {}

  /** Makes bytes [pos, pos+n) available in buf; returns the index of pos in buf. */
  private need(n: number, what: string): number {
    if (this.pos + n > this.fileSize) {
      throw new FileFormatError(
        this.path,
        `truncated GGUF: ${what} needs ${n} bytes at offset ${this.pos}, but the file has ${this.fileSize} bytes`,
      );
    }
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.length) return rel;
    const size = Math.min(Math.max(n, 1 << 20), this.fileSize - this.pos);
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const r = readSync(this.fd, buf, got, size - got, this.pos + got);
      if (r === 0) break;
      got += r;
    }
    if (got < n) {
      throw new FileFormatError(this.path, `truncated GGUF: could not read ${what} at offset ${this.pos}`);
    }
    this.buf = buf.subarray(0, got);
    this.bufStart = this.pos;
    return 0;
  }

  u8(what: string): number {
    const i = this.need(1, what);
    this.pos += 1;
    return this.buf.readUInt8(i);
  }
  i8(what: string): number {
    const i = this.need(1, what);
    this.pos += 1;
    return this.buf.readInt8(i);
  }
  u16(what: string): number {
    const i = this.need(2, what);
    this.pos += 2;
    return this.buf.readUInt16LE(i);
  }
  i16(what: string): number {
    const i = this.need(2, what);
    this.pos += 2;
    return this.buf.readInt16LE(i);
  }
  u32(what: string): number {
    const i = this.need(4, what);
    this.pos += 4;
    return this.buf.readUInt32LE(i);
  }
  i32(what: string): number {
    const i = this.need(4, what);
    this.pos += 4;
    return this.buf.readInt32LE(i);
  }
  f32(what: string): number {
    const i = this.need(4, what);
    this.pos += 4;
    return this.buf.readFloatLE(i);
  }
  f64(what: string): number {
    const i = this.need(8, what);
    this.pos += 8;
    return this.buf.readDoubleLE(i);
  }
  u64(what: string): bigint {
    const i = this.need(8, what);
    this.pos += 8;
    return this.buf.readBigUInt64LE(i);
  }
  i64(what: string): bigint {
    const i = this.need(8, what);
    this.pos += 8;
    return this.buf.readBigInt64LE(i);
  }
  /** A u64 that must fit in a JS number (counts, lengths, offsets). */
  size(what: string): number {
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FileFormatError(this.path, `${what} is implausibly large (${v}) at offset ${this.pos - 8}`);
    }
    return Number(v);
  }
  bytes(n: number, what: string): Buffer {
    const i = this.need(n, what);
    this.pos += n;
    return this.buf.subarray(i, i + n);
  }
  string(what: string): string {
    const n = this.size(`${what} length`);
    return this.bytes(n, what).toString("utf8");
  }
  /**
   * A metadata key or tensor name. GGUF's are ASCII identifiers (llama.cpp's tensor names are C
   * strings of at most 63 bytes); a control character means a corrupt file, and refusing it keeps
   * every later message that quotes the name on one line.
   */
  name(what: string): string {
    const s = this.string(what);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    if (/[\x00-\x1f\x7f]/.test(s)) {
      throw new FileFormatError(this.path, `${what} ${q(s)} contains a control character: a corrupt file?`);
    }
    return s;
  }
}

const NUMERIC_ARRAYS: Partial<
  Record<GgufValueType, { bytes: number; make: (b: ArrayBuffer, n: number) => GgufValue }>
> = {
  [GgufValueType.UINT8]: { bytes: 1, make: (b, n) => new Uint8Array(b, 0, n) },
  [GgufValueType.INT8]: { bytes: 1, make: (b, n) => new Int8Array(b, 0, n) },
  [GgufValueType.UINT16]: { bytes: 2, make: (b, n) => new Uint16Array(b, 0, n) },
  [GgufValueType.INT16]: { bytes: 2, make: (b, n) => new Int16Array(b, 0, n) },
  [GgufValueType.UINT32]: { bytes: 4, make: (b, n) => new Uint32Array(b, 0, n) },
  [GgufValueType.INT32]: { bytes: 4, make: (b, n) => new Int32Array(b, 0, n) },
  [GgufValueType.FLOAT32]: { bytes: 4, make: (b, n) => new Float32Array(b, 0, n) },
  [GgufValueType.FLOAT64]: { bytes: 8, make: (b, n) => new Float64Array(b, 0, n) },
  [GgufValueType.UINT64]: { bytes: 8, make: (b, n) => new BigUint64Array(b, 0, n) },
  [GgufValueType.INT64]: { bytes: 8, make: (b, n) => new BigInt64Array(b, 0, n) },
};

function readValue(
  r: ChunkReader,
  type: number,
  key: string,
  depth = 0,
): { value: GgufValue; arrayType?: number } {
  const what = `value of ${q(key)}`;
  switch (type) {
    case GgufValueType.UINT8:
      return { value: r.u8(what) };
    case GgufValueType.INT8:
      return { value: r.i8(what) };
    case GgufValueType.UINT16:
      return { value: r.u16(what) };
    case GgufValueType.INT16:
      return { value: r.i16(what) };
    case GgufValueType.UINT32:
      return { value: r.u32(what) };
    case GgufValueType.INT32:
      return { value: r.i32(what) };
    case GgufValueType.FLOAT32:
      return { value: r.f32(what) };
    case GgufValueType.FLOAT64:
      return { value: r.f64(what) };
    case GgufValueType.UINT64:
      return { value: r.u64(what) };
    case GgufValueType.INT64:
      return { value: r.i64(what) };
    case GgufValueType.BOOL: {
      const b = r.u8(what);
      if (b > 1) throw new FileFormatError(r.path, `bad bool value ${b} for key ${q(key)}`);
      return { value: b === 1 };
    }
    case GgufValueType.STRING:
      return { value: r.string(what) };
    case GgufValueType.ARRAY: {
      if (depth > 8) throw new FileFormatError(r.path, `arrays nested too deeply in key ${q(key)}`);
      const itemType = r.u32(`array type of ${q(key)}`);
      const n = r.size(`array length of ${q(key)}`);
      // Checked before any array is made: a corrupt length must not size an allocation.
      if (n * minItemBytes(itemType) > r.fileSize - r.pos) {
        throw new FileFormatError(
          r.path,
          `array ${q(key)} has ${n} elements, more than the ${r.fileSize - r.pos} bytes left in the file can hold`,
        );
      }
      const num = NUMERIC_ARRAYS[itemType as GgufValueType];
      if (num) {
        const src = r.bytes(n * num.bytes, what);
        const ab = new ArrayBuffer(n * num.bytes);
        new Uint8Array(ab).set(src);
        return { value: num.make(ab, n), arrayType: itemType };
      }
      if (itemType === GgufValueType.STRING) {
        const out: string[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = r.string(what);
        return { value: out, arrayType: itemType };
      }
      if (itemType === GgufValueType.BOOL || itemType === GgufValueType.ARRAY) {
        const out: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = readValue(r, itemType, key, depth + 1).value;
        return { value: out as GgufValue, arrayType: itemType };
      }
      throw new FileFormatError(r.path, `unknown array element type ${itemType} for key ${q(key)}`);
    }
    default:
      throw new FileFormatError(r.path, `unknown metadata value type ${type} for key ${q(key)}`);
  }
}

/** A parsed GGUF file: header, metadata and tensor directory; tensor data is read on request. */
export class GgufFile {
  private constructor(
    readonly path: string,
    readonly version: number,
    readonly fileSize: number,
    readonly metadata: Map<string, GgufKV>,
    readonly tensors: GgufTensorInfo[],
    readonly alignment: number,
    /** Absolute file offset of the data section. */
    readonly dataOffset: number,
  ) {
    for (const t of tensors) this.byName.set(t.name, t);
  }

  private readonly byName = new Map<string, GgufTensorInfo>();

  /** Parses the header, metadata and tensor infos of a GGUF file (reads no tensor data). */
  static open(path: string): GgufFile {
    const fd = openForRead(path, "GGUF file");
    try {
      const stat = fstatSync(fd);
      // A directory opens fine on Linux and only fails on read, with a bare EISDIR.
      if (!stat.isFile()) throw new FileFormatError(path, "not a file (a directory or a device?)");
      const fileSize = stat.size;
      const r = new ChunkReader(fd, path, fileSize);
      if (fileSize < 4) throw new FileFormatError(path, `not a GGUF file (only ${fileSize} bytes)`);
      const magic = r.u32("magic");
      if (magic !== MAGIC) {
        const got = Buffer.alloc(4);
        got.writeUInt32LE(magic);
        throw new FileFormatError(
          path,
          `not a GGUF file (magic ${JSON.stringify(got.toString("latin1"))}, expected "GGUF")`,
        );
      }
      const version = r.u32("version");
      if (version === 1) throw new FileFormatError(path, "GGUF version 1 is not supported (only 2 and 3)");
      if (version !== 2 && version !== 3) {
        if ((version & 0xffff) === 0 && version >>> 16 !== 0) {
          throw new FileFormatError(path, "big-endian GGUF files are not supported");
        }
        throw new FileFormatError(path, `unsupported GGUF version ${version} (only 2 and 3)`);
      }
      const nTensors = r.size("tensor count");
      const nKV = r.size("metadata count");
      // Every KV needs ≥ 12 bytes and every tensor info ≥ 24: reject absurd counts before allocating.
      if (nKV * 12 + nTensors * 24 > fileSize) {
        throw new FileFormatError(
          path,
          `truncated GGUF: header announces ${nTensors} tensors and ${nKV} metadata entries, more than ${fileSize} bytes can hold`,
        );
      }
      const metadata = new Map<string, GgufKV>();
      for (let i = 0; i < nKV; i++) {
        const key = r.name(`metadata key #${i}`);
        const type = r.u32(`value type of ${q(key)}`);
        const { value, arrayType } = readValue(r, type, key);
        if (metadata.has(key)) throw new FileFormatError(path, `duplicate metadata key ${q(key)}`);
        metadata.set(key, arrayType === undefined ? { key, type, value } : { key, type, arrayType, value });
      }
      let alignment = DEFAULT_ALIGNMENT;
      const al = metadata.get("general.alignment");
      if (al !== undefined) {
        // Not `v & (v - 1)`: it truncates to 32 bits, so 0.5, NaN or 2^40 + 2^33 would pass.
        const v = al.value;
        if (
          typeof v !== "number" ||
          !Number.isSafeInteger(v) ||
          v <= 0 ||
          2 ** Math.round(Math.log2(v)) !== v
        ) {
          const got = typeof v === "string" ? q(v) : typeof v === "object" ? "an array" : String(v);
          throw new FileFormatError(path, `general.alignment must be a power of two, got ${got}`);
        }
        alignment = v;
      }
      const infos: Omit<GgufTensorInfo, "fileOffset">[] = [];
      const seen = new Set<string>();
      for (let i = 0; i < nTensors; i++) {
        const name = r.name(`tensor name #${i}`);
        if (seen.has(name)) throw new FileFormatError(path, `duplicate tensor ${q(name)}`);
        seen.add(name);
        const nDims = r.u32(`dim count of tensor ${q(name)}`);
        if (nDims > 8)
          throw new FileFormatError(path, `tensor ${q(name)} has ${nDims} dims (at most 8 allowed)`);
        const dims: number[] = [];
        for (let d = 0; d < nDims; d++) dims.push(r.size(`dims of tensor ${q(name)}`));
        const type = r.u32(`type of tensor ${q(name)}`);
        const offset = r.size(`offset of tensor ${q(name)}`);
        const numel = dims.reduce((a, b) => a * b, 1);
        const t = GGML_TYPES[type];
        let nbytes: number | undefined;
        if (t?.blockSize && t.typeSize) {
          if (dims.length > 0 && dims[0]! % t.blockSize !== 0) {
            throw new FileFormatError(
              path,
              `tensor ${q(name)}: row length ${dims[0]} is not a multiple of the ${t.name} block size ${t.blockSize}`,
            );
          }
          nbytes = (numel / t.blockSize) * t.typeSize;
        }
        if (offset % alignment !== 0) {
          throw new FileFormatError(
            path,
            `tensor ${q(name)} offset ${offset} is not a multiple of ${alignment}`,
          );
        }
        const info: Omit<GgufTensorInfo, "fileOffset"> = {
          name,
          dims,
          shape: [...dims].reverse(),
          type,
          typeName: ggmlTypeName(type),
          numel,
          offset,
        };
        if (nbytes !== undefined) info.nbytes = nbytes;
        infos.push(info);
      }
      const dataOffset = Math.ceil(r.pos / alignment) * alignment;
      const tensors: GgufTensorInfo[] = infos.map((t) => ({ ...t, fileOffset: dataOffset + t.offset }));
      for (const t of tensors) {
        const end = t.fileOffset + (t.nbytes ?? 0);
        if (end > fileSize || (t.nbytes === undefined && t.fileOffset > fileSize)) {
          throw new FileFormatError(
            path,
            `truncated GGUF: tensor ${q(t.name)} needs bytes up to ${end}, but the file has ${fileSize} bytes`,
          );
        }
      }
      return new GgufFile(path, version, fileSize, metadata, tensors, alignment, dataOffset);
    } finally {
      closeSync(fd);
    }
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  /** The raw value of a metadata key, or undefined. */
  get(key: string): GgufValue | undefined {
    return this.metadata.get(key)?.value;
  }

  /** A numeric metadata value (u64/i64 converted to number); throws when absent or not a number. */
  number(key: string): number;
  number(key: string, fallback: number): number;
  number(key: string, fallback?: number): number {
    const v = this.get(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new FileFormatError(this.path, `missing metadata key "${key}"`);
    }
    if (typeof v === "number") return v;
    if (typeof v === "bigint") return Number(v);
    throw new FileFormatError(this.path, `metadata key "${key}" is not a number`);
  }

  /** A string metadata value; throws when absent or not a string. */
  string(key: string): string;
  string(key: string, fallback: string): string;
  string(key: string, fallback?: string): string {
    const v = this.get(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new FileFormatError(this.path, `missing metadata key "${key}"`);
    }
    if (typeof v !== "string") throw new FileFormatError(this.path, `metadata key "${key}" is not a string`);
    return v;
  }

  /** A bool metadata value, or the fallback when absent. */
  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") throw new FileFormatError(this.path, `metadata key "${key}" is not a bool`);
    return v;
  }

  /** A string-array metadata value; throws when absent or of another type. */
  strings(key: string): string[] {
    const kv = this.metadata.get(key);
    if (!kv) throw new FileFormatError(this.path, `missing metadata key "${key}"`);
    if (kv.arrayType !== GgufValueType.STRING) {
      throw new FileFormatError(this.path, `metadata key "${key}" is not an array of strings`);
    }
    return kv.value as string[];
  }

  tensorInfo(name: string): GgufTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new FileFormatError(this.path, `no tensor named "${name}"`);
    return t;
  }

  hasTensor(name: string): boolean {
    return this.byName.has(name);
  }

  /** The raw bytes of a tensor (types with a known block size only). */
  readTensorBytes(name: string): Uint8Array {
    const t = this.tensorInfo(name);
    if (t.nbytes === undefined) {
      throw new FileFormatError(
        this.path,
        `tensor "${name}" has type ${t.typeName}, whose size is not known here`,
      );
    }
    const out = new Uint8Array(t.nbytes);
    const fd = openForRead(this.path, "GGUF file");
    try {
      let got = 0;
      while (got < t.nbytes) {
        const r = readSync(fd, out, got, t.nbytes - got, t.fileOffset + got);
        if (r === 0) break;
        got += r;
      }
      if (got < t.nbytes) {
        throw new FileFormatError(
          this.path,
          `truncated GGUF: tensor "${name}" data ends early at ${t.fileOffset + got}`,
        );
      }
    } finally {
      closeSync(fd);
    }
    return out;
  }

  /**
   * A tensor's values as float32, in stored order (row-major over `shape`). Reads F32, F16 and BF16;
   * other types throw a FileFormatError naming the tensor and type.
   */
  readTensor(name: string): Float32Array {
    const t = this.tensorInfo(name);
    if (t.type !== GGML_TYPE_F32 && t.type !== GGML_TYPE_F16 && t.type !== GGML_TYPE_BF16) {
      throw new FileFormatError(
        this.path,
        `tensor "${name}" has type ${t.typeName}; only F32, F16 and BF16 tensors can be read`,
      );
    }
    const bytes = this.readTensorBytes(name);
    if (t.type === GGML_TYPE_F32) return new Float32Array(bytes.buffer, 0, t.numel);
    const u16 = new Uint16Array(bytes.buffer, 0, t.numel);
    return t.type === GGML_TYPE_F16 ? f16ToF32(u16) : bf16ToF32(u16);
  }
}

/** Opens a GGUF file (header, metadata, tensor infos). */
export function readGguf(path: string): GgufFile {
  return GgufFile.open(path);
}

/** Whether `p` is a file that starts with the GGUF magic (a folder or hub id is not). */
export function isGgufFile(p: string): boolean {
  let fd: number | undefined;
  try {
    if (!statSync(p).isFile()) return false;
    fd = openSync(p, "r");
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.toString("latin1") === "GGUF";
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

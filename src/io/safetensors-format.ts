/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [8 bytes]  N, the header length, little-endian u64
 *   [N bytes]  UTF-8 JSON object: { "<tensor name>": { "dtype": "F32", "shape": [2, 3],
 *              "data_offsets": [begin, end] }, ..., "__metadata__": { "<key>": "<string>" } }
 *   [rest]     the data region; data_offsets are relative to its start (byte 8 + N)
 *
 * Tensor data is little-endian, row-major. Model files run to many gigabytes, so the reader only
 * reads the header on open and then reads one tensor at a time at its offset; the writer streams
 * tensor by tensor. Typed arrays are host-endian, and every platform Node supports in practice is
 * little-endian, so tensor bytes are copied as-is in both directions.
 *
 * This module is the format alone, over any ByteSource (a file in Node: safetensors.ts; bytes in
 * memory in a browser). Every fault in a file is reported as a one-line FileFormatError naming the file, the tensor
 * (when one is at fault) and what is wrong, because the usual cause is a truncated download or a
 * file from some other tool, and the user needs to know which file to fetch again.
 */

import { type AnyTypedArray, DTYPE_BYTES, type DType, isFloat } from "../graph/dtype.js";
import { toFloat32 } from "../graph/half.js";
import { kindOf, preview } from "../util/describe.js";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import { type ByteSource, bytesSource } from "./byte-source.js";

/** Safetensors dtype names this engine reads, and the DType each maps to. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, DType>> = {
  F32: "float32",
  F64: "float64",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

/** The safetensors dtype name written for each DType. */
export const DTYPE_TO_SAFETENSORS: Readonly<Record<DType, string>> = {
  float32: "F32",
  float64: "F64",
  float16: "F16",
  bfloat16: "BF16",
  int64: "I64",
  int32: "I32",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};

/**
 * Largest header accepted. The reference implementation refuses headers over 100 MB; a larger
 * length almost certainly means the file is not safetensors, and we would otherwise try to
 * allocate that much memory before noticing.
 */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: DType;
  /** The dtype name as spelled in the file, e.g. "BF16". */
  stDtype: string;
  shape: number[];
  /** Absolute offset of the tensor's first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

/** One tensor to write. 16-bit floats are given as their raw bits in a Uint16Array. */
export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: readonly number[];
  /** The dtype's own typed array (see TypedArrayFor), or the raw little-endian bytes in a Uint8Array. */
  data: AnyTypedArray | Uint8Array;
}

/** A safetensors file opened for reading, over a ByteSource held until close(). */
export class SafetensorsFile {
  private source: ByteSource | undefined;

  private constructor(
    readonly path: string,
    source: ByteSource,
    readonly metadata: Record<string, string>,
    readonly tensors: Map<string, TensorInfo>,
  ) {
    this.source = source;
  }

  /** Reads and validates the header (not the tensor data); the source is closed if that fails. */
  static fromSource(source: ByteSource): SafetensorsFile {
    const path = source.path;
    try {
      const fileSize = source.size;
      if (fileSize < 8) {
        throw new FileFormatError(
          path,
          `file is too short to be safetensors: ${fileSize} bytes, but the header length alone takes 8`,
        );
      }
      const lenBytes = new Uint8Array(8);
      source.readInto(lenBytes, 0);
      // Compare as a bigint first: a garbage u64 can exceed 2^53 and lose precision as a number.
      const headerLen64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (headerLen64 > BigInt(fileSize - 8)) {
        throw new FileFormatError(
          path,
          `header length ${headerLen64} runs past the end of the file (${fileSize} bytes): ` +
            "the file is truncated or not safetensors",
        );
      }
      if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
        throw new FileFormatError(
          path,
          `header length ${headerLen64} is absurdly large (limit ${MAX_HEADER_BYTES} bytes): not a safetensors file?`,
        );
      }
      const headerLen = Number(headerLen64);
      const headerBytes = new Uint8Array(headerLen);
      source.readInto(headerBytes, 8);
      const dataStart = 8 + headerLen;
      const { metadata, tensors } = parseHeader(path, headerBytes, dataStart, fileSize - dataStart);
      return new SafetensorsFile(path, source, metadata, tensors);
    } catch (e) {
      source.close();
      throw e;
    }
  }

  /** A whole file's bytes in memory (a browser's fetched or picked file); `path` names it in messages. */
  static fromBytes(path: string, bytes: Uint8Array): SafetensorsFile {
    return SafetensorsFile.fromSource(bytesSource(path, bytes));
  }

  /** The header entry for `name`; throws naming the file if there is no such tensor. */
  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new FileFormatError(this.path, `no tensor named ${JSON.stringify(name)}`);
    return info;
  }

  private openSource(name: string): ByteSource {
    if (this.source === undefined)
      throw new LoraTsError(`${this.path}: read ${JSON.stringify(name)} after close()`);
    return this.source;
  }

  /** The raw little-endian bytes of one tensor, in a fresh buffer (byteOffset 0, so aligned). */
  read(name: string): Uint8Array {
    const info = this.info(name);
    const source = this.openSource(name);
    const out = new Uint8Array(info.byteLength);
    source.readInto(out, info.byteOffset);
    return out;
  }

  /** One tensor in its dtype's typed array (16-bit floats as raw bits in a Uint16Array). */
  readTyped(name: string): AnyTypedArray {
    const dtype = this.info(name).dtype;
    // read() returns a fresh ArrayBuffer, so we can view it in place rather than going through
    // typedArrayFromBytes, which copies: that copy would briefly double the memory of a
    // gigabyte-sized embedding table.
    return viewAs(dtype, this.read(name));
  }

  /**
   * One float tensor as float32, widening float16/bfloat16 exactly and rounding float64. A float32
   * tensor is read straight into `scratch` when given and large enough (the result is then a view of
   * it): for callers that read many tensors one after the other and keep none of them.
   */
  readFloat32(name: string, scratch?: Float32Array): Float32Array {
    const info = this.info(name);
    if (!isFloat(info.dtype)) {
      throw new LoraTsError(
        `${this.path}: tensor ${JSON.stringify(name)} has dtype ${info.stDtype}, not a float type`,
      );
    }
    const n = info.byteLength / 4;
    if (info.dtype === "float32" && scratch && scratch.length >= n) {
      const view = new Uint8Array(scratch.buffer, scratch.byteOffset, info.byteLength);
      this.openSource(name).readInto(view, info.byteOffset);
      return scratch.subarray(0, n);
    }
    const elements = info.byteLength / 2;
    if (info.dtype === "bfloat16" && scratch && scratch.length >= elements) {
      // The bf16 bytes go into the upper half of the scratch, and are widened in place from the
      // front: float i is written over bytes 4i..4i+3, which only ever hold bf16 values already read.
      // No fresh memory per weight: a 1B model's build read 1.2 billion weights through new arrays,
      // and touching fresh pages cost more than the widening itself.
      const bytes = new Uint8Array(scratch.buffer, scratch.byteOffset, 4 * elements);
      this.openSource(name).readInto(bytes.subarray(2 * elements), info.byteOffset);
      const src = new Uint16Array(scratch.buffer, scratch.byteOffset + 2 * elements, elements);
      const dst = new Int32Array(scratch.buffer, scratch.byteOffset, elements);
      for (let i = 0; i < elements; i++) dst[i] = src[i]! << 16;
      return scratch.subarray(0, elements);
    }
    return toFloat32(info.dtype, this.readTyped(name));
  }

  /** Releases the source (a file descriptor); safe to call more than once. */
  close(): void {
    this.source?.close();
    this.source = undefined;
  }
}

/**
 * The bytes of a safetensors file holding `tensors` (and optional string metadata), in pieces: the
 * length prefix, the header, then each tensor's data (views of the given arrays, not copies).
 * `path` names the file in messages. Everything is checked before anything is produced.
 *
 * Layout: tensors are ordered by element size, largest first, then by name, the same order the
 * reference implementation uses. With the header padded to a multiple of 8 bytes, this puts every
 * tensor at an offset that is a multiple of its element size, so memory-mapping readers can view
 * each one in place; the order is also deterministic, so identical inputs give identical files.
 */
export function safetensorsParts(
  path: string,
  tensors: readonly TensorToWrite[] | ReadonlyMap<string, Omit<TensorToWrite, "name">>,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const list: TensorToWrite[] = Array.isArray(tensors)
    ? [...(tensors as readonly TensorToWrite[])]
    : [...(tensors as ReadonlyMap<string, Omit<TensorToWrite, "name">>)].map(([name, t]) => ({ name, ...t }));

  const seen = new Set<string>();
  for (const t of list) checkTensorToWrite(path, t, seen);
  list.sort(
    (a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );

  // The header JSON is assembled by hand rather than from an object so that key order is exactly
  // the layout order (objects move integer-like keys first) and a tensor named "__proto__" is safe.
  const entries: string[] = [];
  if (metadata !== undefined) {
    const metaEntries: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new LoraTsError(
          `${path}: metadata value for ${JSON.stringify(k)} is a ${typeof v}; safetensors metadata must be strings`,
        );
      }
      metaEntries.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    if (metaEntries.length > 0) entries.push(`"__metadata__":{${metaEntries.join(",")}}`);
  }
  let offset = 0;
  for (const t of list) {
    const end = offset + t.data.byteLength;
    const entry = { dtype: DTYPE_TO_SAFETENSORS[t.dtype], shape: [...t.shape], data_offsets: [offset, end] };
    entries.push(`${JSON.stringify(t.name)}:${JSON.stringify(entry)}`);
    offset = end;
  }
  const unpadded = new TextEncoder().encode(`{${entries.join(",")}}`);
  // Pad with spaces (valid trailing JSON whitespace) so the data region starts 8-byte aligned.
  const header = new Uint8Array(unpadded.byteLength + ((8 - ((8 + unpadded.byteLength) % 8)) % 8)).fill(0x20);
  header.set(unpadded);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  return [
    prefix,
    header,
    ...list.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ];
}

/** As safetensorsParts, joined into one buffer: for small files such as an adapter to download. */
export function safetensorsBytes(
  tensors: readonly TensorToWrite[] | ReadonlyMap<string, Omit<TensorToWrite, "name">>,
  metadata?: Record<string, string>,
  path = "safetensors",
): Uint8Array {
  const parts = safetensorsParts(path, tensors, metadata);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Header parsing and validation

function parseHeader(
  path: string,
  headerBytes: Uint8Array,
  dataStart: number,
  dataLength: number,
): { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  const fail = (problem: string): never => {
    throw new FileFormatError(path, problem);
  };

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    return fail("header is not valid UTF-8: not a safetensors file, or a corrupt one");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(
      `header is not valid JSON (${oneLine(errorMessage(e))}): not a safetensors file, or a corrupt one`,
    );
  }
  if (!isPlainObject(header)) {
    return fail(`header JSON is ${kindOf(header)}, expected an object mapping tensor names to entries`);
  }

  // Note: JSON.parse keeps the last of duplicate keys; a file with duplicate names is accepted.
  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = checkMetadata(entry, fail);
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (!isPlainObject(entry)) {
      fail(`${where}: entry is ${kindOf(entry)}, expected an object with dtype, shape and data_offsets`);
    }
    const e = entry as Record<string, unknown>;
    for (const field of ["dtype", "shape", "data_offsets"]) {
      if (!(field in e)) fail(`${where}: entry is missing "${field}"`);
    }
    const stDtype = e["dtype"];
    if (typeof stDtype !== "string") return fail(`${where}: dtype is ${kindOf(stDtype)}, expected a string`);
    const dtype = Object.hasOwn(SAFETENSORS_DTYPES, stDtype) ? SAFETENSORS_DTYPES[stDtype] : undefined;
    if (dtype === undefined) {
      return fail(
        `${where}: unknown or unsupported dtype ${JSON.stringify(stDtype)} ` +
          `(supported: ${Object.keys(SAFETENSORS_DTYPES).join(", ")})`,
      );
    }
    const shape = e["shape"];
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      return fail(`${where}: shape ${preview(shape)} is not a list of non-negative integers`);
    }
    const offsets = e["data_offsets"];
    const pair =
      Array.isArray(offsets) && offsets.length === 2 && offsets.every(isNonNegativeInt) ? offsets : [];
    const [begin, end] = pair;
    if (begin === undefined || end === undefined || begin > end) {
      return fail(
        `${where}: data_offsets ${preview(offsets)} is not a pair [begin, end] of integers, begin <= end`,
      );
    }
    const expected = shape.reduce((a: number, d: number) => a * d, 1) * DTYPE_BYTES[dtype];
    const actual = end - begin;
    if (expected !== actual) {
      fail(
        `${where}: size mismatch: shape [${shape.join(", ")}] of ${stDtype} needs ${expected} bytes, ` +
          `but data_offsets [${begin}, ${end}] cover ${actual} bytes`,
      );
    }
    if (end > dataLength) {
      fail(
        `${where}: data_offsets [${begin}, ${end}] run past the end of the data region ` +
          `(${dataLength} bytes): the file is truncated`,
      );
    }
    tensors.set(name, {
      name,
      dtype,
      stDtype,
      shape: shape as number[],
      byteOffset: dataStart + begin,
      byteLength: actual,
    });
    if (actual > 0) ranges.push({ name, begin, end });
  }

  // Overlap check: sort by start and compare each range against the furthest end seen so far.
  // Empty tensors take no bytes and cannot overlap anything. Gaps between ranges are tolerated.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let furthest: (typeof ranges)[number] | undefined;
  for (const r of ranges) {
    if (furthest && r.begin < furthest.end) {
      fail(
        `tensors ${JSON.stringify(furthest.name)} and ${JSON.stringify(r.name)} overlap: ` +
          `data_offsets [${furthest.begin}, ${furthest.end}] and [${r.begin}, ${r.end}]`,
      );
    }
    if (!furthest || r.end > furthest.end) furthest = r;
  }
  return { metadata, tensors };
}

function checkMetadata(value: unknown, fail: (problem: string) => never): Record<string, string> {
  if (!isPlainObject(value)) return fail(`__metadata__ is ${kindOf(value)}, expected an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      fail(`__metadata__ must map strings to strings, but ${JSON.stringify(k)} has ${kindOf(v)} value`);
    }
    // defineProperty, not assignment, so a key named "__proto__" stays an ordinary key.
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function checkTensorToWrite(path: string, t: TensorToWrite, seen: Set<string>): void {
  const where = `${path}: tensor ${JSON.stringify(t.name)}`;
  if (typeof t.name !== "string")
    throw new LoraTsError(`${path}: tensor name ${preview(t.name)} is not a string`);
  if (t.name === "__metadata__") throw new LoraTsError(`${where}: the name is reserved by safetensors`);
  if (seen.has(t.name)) throw new LoraTsError(`${where}: given twice`);
  seen.add(t.name);
  if (!Object.hasOwn(DTYPE_TO_SAFETENSORS, t.dtype))
    throw new LoraTsError(`${where}: unknown dtype ${preview(t.dtype)}`);
  if (!Array.isArray(t.shape) || !t.shape.every(isNonNegativeInt)) {
    throw new LoraTsError(`${where}: shape ${preview(t.shape)} is not a list of non-negative integers`);
  }
  const raw = t.data instanceof Uint8Array;
  const expectedClass = arrayClassFor(t.dtype);
  if (!raw && !(t.data instanceof expectedClass)) {
    throw new LoraTsError(
      `${where}: data is a ${t.data?.constructor?.name ?? typeof t.data}, but dtype ${t.dtype} needs a ` +
        `${expectedClass.name} (or its raw bytes in a Uint8Array)`,
    );
  }
  const expected = t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
  if (t.data.byteLength !== expected) {
    throw new LoraTsError(
      `${where}: data has ${t.data.byteLength} bytes, but shape [${t.shape.join(", ")}] of ${t.dtype} ` +
        `needs ${expected}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** A typed-array view of `bytes`, which must start at an offset aligned for `dtype`. */
function viewAs(dtype: DType, bytes: Uint8Array): AnyTypedArray {
  const Cls = arrayClassFor(dtype);
  if (Cls === Uint8Array) return bytes;
  // Callers pass buffers they allocated themselves, so this is a plain ArrayBuffer.
  return new Cls(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / DTYPE_BYTES[dtype]);
}

type ArrayClass =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Uint16ArrayConstructor
  | BigInt64ArrayConstructor
  | Int32ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor;

function arrayClassFor(dtype: DType): ArrayClass {
  switch (dtype) {
    case "float32":
      return Float32Array;
    case "float64":
      return Float64Array;
    case "float16":
    case "bfloat16":
      return Uint16Array;
    case "int64":
      return BigInt64Array;
    case "int32":
      return Int32Array;
    case "int8":
      return Int8Array;
    case "uint8":
    case "bool":
      return Uint8Array;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ");
}

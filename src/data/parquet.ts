/**
 * Parquet data files → plain row objects, one row group at a time, read with hyparquet (pure
 * JavaScript). Only the footer and the current row group's column chunks are in memory, so a file
 * of any size is read in the memory of its largest row group.
 *
 * Values: text columns are strings (hyparquet decodes BYTE_ARRAY as UTF-8); lists are arrays and
 * structs are objects, so a `messages` column of list<struct<role, content>> arrives as
 * `[{role, content}, ...]`, as formats.ts expects; nulls stay null.
 * INT64 values, which hyparquet gives as BigInt, become numbers when they are safe integers
 * (|v| ≤ 2⁵³ − 1) and decimal strings otherwise: the rows stay JSON-serialisable and no value is
 * silently rounded (the row formats only read text columns, so this matters only for extra columns
 * such as ids).
 *
 * Codecs: uncompressed and snappy (hyparquet's own; what `datasets` and the hub's parquet
 * conversion write), gzip and brotli (node:zlib), zstd where this Node's zlib has it (Node ≥ 22.15).
 * Others are a one-line error naming the codec.
 *
 * Any fault in the file (not parquet, truncated, damaged) is one FileFormatError line naming the file.
 */
import { open, stat } from "node:fs/promises";
import * as zlib from "node:zlib";
import type { AsyncBuffer, Compressors, FileMetaData } from "hyparquet";
import { parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { FileFormatError } from "../util/errors.js";
import { checkFooter, checkPages, groupRange } from "./parquet-check.js";

const MAGIC = "PAR1";

/** Decompressors beyond hyparquet's built-in snappy, from node:zlib (no extra dependency). */
function nodeCompressors(): Compressors {
  const c: Compressors = {
    GZIP: (input) => new Uint8Array(zlib.gunzipSync(input)),
    BROTLI: (input) => new Uint8Array(zlib.brotliDecompressSync(input)),
  };
  // zstdDecompressSync exists from Node 22.15 / 23.8; @types/node 20 does not declare it.
  const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Uint8Array) => Buffer }).zstdDecompressSync;
  if (zstd) c.ZSTD = (input) => new Uint8Array(zstd(input));
  return c;
}
const COMPRESSORS = nodeCompressors();

/** A file read by byte range through one open handle (hyparquet's own opens a stream per slice). */
async function fileBuffer(path: string): Promise<{ buf: AsyncBuffer; close: () => Promise<void> }> {
  let size: number;
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error("not a file");
    size = st.size;
    fh = await open(path, "r");
  } catch (e) {
    throw new FileFormatError(path, `cannot read (${firstLine(e)})`);
  }
  const buf: AsyncBuffer = {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const from = Math.max(0, Math.min(start, size));
      const to = Math.max(from, Math.min(end ?? size, size));
      const out = new Uint8Array(to - from);
      try {
        for (let done = 0; done < out.length; ) {
          const { bytesRead } = await fh.read(out, done, out.length - done, from + done);
          if (bytesRead === 0) break; // shrank while open: the checks see the zeros as damage
          done += bytesRead;
        }
      } catch (e) {
        throw new FileFormatError(path, `cannot read (${firstLine(e)})`);
      }
      return out.buffer;
    },
  };
  return { buf, close: () => fh.close() };
}

function firstLine(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).split("\n")[0]!.trim();
}

/** Reads and checks the footer: the magic at both ends, then the thrift metadata. */
async function readFooter(path: string, buf: AsyncBuffer): Promise<FileMetaData> {
  const size = buf.byteLength;
  const text = (b: ArrayBuffer) => new TextDecoder("latin1").decode(b);
  const head = size >= 4 ? text(await buf.slice(0, 4)) : "";
  const tail = size >= 8 ? text(await buf.slice(size - 4, size)) : "";
  if (tail !== MAGIC) {
    if (head === MAGIC) {
      throw new FileFormatError(
        path,
        `truncated or damaged parquet file: it starts with PAR1 but has no PAR1 footer (${size} bytes)`,
      );
    }
    throw new FileFormatError(path, "not a parquet file (no PAR1 footer)");
  }
  const lengthBytes = new DataView(await buf.slice(size - 8, size - 4));
  const metadataLength = lengthBytes.getUint32(0, true);
  if (metadataLength + 8 > size - (head === MAGIC ? 4 : 0)) {
    throw new FileFormatError(
      path,
      `truncated or damaged parquet file: its footer claims ${metadataLength} bytes of metadata in a ${size}-byte file`,
    );
  }
  let meta: FileMetaData;
  try {
    meta = await parquetMetadataAsync(buf);
  } catch (e) {
    throw new FileFormatError(path, `damaged parquet footer (${firstLine(e)})`);
  }
  checkFooter(path, meta, size);
  return meta;
}

/** The number of rows, from the footer alone (for progress and ETA). */
export async function countParquetRows(path: string): Promise<number> {
  const { buf, close } = await fileBuffer(path);
  try {
    return Number((await readFooter(path, buf)).num_rows);
  } finally {
    await close();
  }
}

/**
 * The file's rows, one row group per yield, as plain objects (column name → value; see the file
 * comment for the values). Stopping the iteration early closes the file.
 */
export async function* readParquetRecords(path: string): AsyncGenerator<Record<string, unknown>[]> {
  const { buf, close } = await fileBuffer(path);
  try {
    const metadata = await readFooter(path, buf);
    let rowStart = 0;
    for (const [i, group] of metadata.row_groups.entries()) {
      const rowEnd = rowStart + Number(group.num_rows);
      if (rowEnd === rowStart) continue;
      // The group's bytes are read once: checked (parquet-check.ts), then decoded from memory.
      const [lo, hi] = groupRange(group);
      const bytes = new Uint8Array(await buf.slice(lo, hi));
      checkPages(path, group, i, bytes, lo);
      let rows: Record<string, unknown>[];
      try {
        rows = await parquetReadObjects({
          file: withSpan(buf, lo, bytes),
          metadata,
          rowStart,
          rowEnd,
          compressors: COMPRESSORS,
        });
      } catch (e) {
        throw readError(path, i, e);
      }
      for (const row of rows) for (const k in row) row[k] = plain(row[k]);
      rowStart = rowEnd;
      yield rows;
    }
  } finally {
    await close();
  }
}

/** `buf`, answering reads inside [lo, lo + bytes.length) from `bytes`. */
function withSpan(buf: AsyncBuffer, lo: number, bytes: Uint8Array): AsyncBuffer {
  return {
    byteLength: buf.byteLength,
    slice(start: number, end = buf.byteLength) {
      if (start >= lo && end <= lo + bytes.length) return bytes.slice(start - lo, end - lo).buffer;
      return buf.slice(start, end);
    },
  };
}

function readError(path: string, group: number, e: unknown): FileFormatError {
  if (e instanceof FileFormatError) return e;
  const msg = firstLine(e);
  const codec = /unsupported compression codec: (\w+)/.exec(msg);
  if (codec) {
    return new FileFormatError(
      path,
      `compressed with ${codec[1]}, which lora-ts cannot read (it reads uncompressed, snappy, gzip and brotli${COMPRESSORS.ZSTD ? ", zstd" : ""} parquet): rewrite it with one of those`,
    );
  }
  return new FileFormatError(path, `damaged parquet data in row group ${group} (${msg})`);
}

/** BigInt → number or decimal string, recursively through arrays and plain objects. */
function plain(v: unknown): unknown {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (v instanceof BigInt64Array || v instanceof BigUint64Array) return Array.from(v, plain);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = plain(v[i]);
    return v;
  }
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    for (const k in o) o[k] = plain(o[k]);
  }
  return v;
}

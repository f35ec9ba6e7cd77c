/**
 * A prepared data set on disk: the tokenized examples of a data file, read back one example at a time
 * so that a million rows never become a million JS objects (issue #18).
 *
 * A folder of:
 *  - ids.bin      every example's token ids, one after the other, int32 little-endian;
 *  - trained.bin  one byte per token: 1 where the token is trained (its label is its id), 0 where it is
 *                 not (label IGNORE_INDEX). Labels are always one or the other (examples.ts,
 *                 chat-template.ts), so this is every label exactly; ExampleWriter refuses any other;
 *  - offsets.bin  examples + 1 token offsets, float64 little-endian (exact up to 2^53 tokens): example
 *                 i is tokens offsets[i] .. offsets[i + 1];
 *  - meta.json    format name and version, counts, the data summary and what happened to the rows.
 * The writer (prepare.ts) writes these under their final names into a folder it is given; whoever gives
 * it the folder renames the folder into place, so a folder under its final name is always complete.
 * PreparedData.open checks the files against meta.json and throws CorruptPreparedDataError when they
 * disagree, so that a cache can rebuild instead of training on garbage.
 *
 * Memory: the reader holds the offsets (8 bytes an example) and two open files; an example is read
 * with two positional reads.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import { IGNORE_INDEX } from "./chat-template.js";
import type { ExampleSource } from "./example-source.js";
import type { DataSummary, Example } from "./examples.js";
import type { RowFormat } from "./formats.js";

export const PREPARED_FORMAT = "lora-ts prepared data";
export const PREPARED_VERSION = 1;

export const IDS_FILE = "ids.bin";
export const TRAINED_FILE = "trained.bin";
export const OFFSETS_FILE = "offsets.bin";
export const META_FILE = "meta.json";

/** What happened to the rows of a data set, for the user and metrics.jsonl. */
export interface RowAccounting {
  /** Rows read from the file(s). */
  read: number;
  /** Examples kept (a plain-text document makes several). */
  kept: number;
  /** Examples cut to maxLength (kept or not). */
  truncated: number;
  /** Examples dropped, by reason. */
  dropped: { total: number; nothingLeftAfterTruncation: number; noTokenToTrain: number };
}

export interface PreparedMeta {
  format: typeof PREPARED_FORMAT;
  version: number;
  examples: number;
  tokens: number;
  /** The rows' format (from the first row), "plaintext" for a .txt document. */
  rowFormat: RowFormat;
  /** The data files, in the order their rows were read. */
  files: string[];
  summary: DataSummary;
  rows: RowAccounting;
}

/** The row accounting of a data summary. */
export function rowAccounting(s: DataSummary): RowAccounting {
  return {
    read: s.rows,
    kept: s.examples,
    truncated: s.truncated,
    dropped: {
      total: s.dropped,
      nothingLeftAfterTruncation: s.droppedByTruncation,
      noTokenToTrain: s.dropped - s.droppedByTruncation,
    },
  };
}

/** A prepared data set whose files do not match its meta.json (or cannot be read): rebuild it. */
export class CorruptPreparedDataError extends FileFormatError {
  override name = "CorruptPreparedDataError";
}

/** Bytes buffered before a write: few system calls, little memory. */
const WRITE_BUFFER = 1 << 20;

/** Appends to one file through a buffer. */
class BufferedFile {
  private readonly fd: number;
  private readonly buf = Buffer.allocUnsafe(WRITE_BUFFER);
  private used = 0;
  constructor(readonly path: string) {
    this.fd = openSync(path, "wx");
  }
  /** Room for `n` more bytes; returns the buffer and the offset to write at. */
  reserve(n: number): number {
    if (this.used + n > this.buf.length) this.flush();
    const at = this.used;
    this.used += n;
    return at;
  }
  get buffer(): Buffer {
    return this.buf;
  }
  write(bytes: Uint8Array): void {
    if (bytes.length > this.buf.length - this.used) this.flush();
    if (bytes.length > this.buf.length) {
      writeAll(this.fd, bytes);
      return;
    }
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }
  flush(): void {
    if (this.used > 0) writeAll(this.fd, this.buf.subarray(0, this.used));
    this.used = 0;
  }
  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/**
 * Writes examples as ids.bin + trained.bin, and their lengths as int32 little-endian to `lengthsFile`
 * (a shard's lengths.bin; prepare.ts joins shards and turns lengths into offsets.bin).
 */
export class ExampleWriter {
  private readonly ids: BufferedFile;
  private readonly trained: BufferedFile;
  private readonly lengths: BufferedFile;
  examples = 0;
  tokens = 0;

  constructor(dir: string, lengthsFile = "lengths.bin") {
    this.ids = new BufferedFile(join(dir, IDS_FILE));
    this.trained = new BufferedFile(join(dir, TRAINED_FILE));
    this.lengths = new BufferedFile(join(dir, lengthsFile));
  }

  add(ex: Example): void {
    const n = ex.inputIds.length;
    if (ex.labels.length !== n) throw new LoraTsError("prepared data: labels/inputIds lengths differ");
    for (let t = 0; t < n; t++) {
      const id = ex.inputIds[t]!;
      const label = ex.labels[t]!;
      if (label !== id && label !== IGNORE_INDEX) {
        throw new LoraTsError(
          `prepared data: label ${label} is neither the token id ${id} nor ${IGNORE_INDEX}`,
        );
      }
      const at = this.ids.reserve(4);
      this.ids.buffer.writeInt32LE(id, at);
      this.trained.buffer[this.trained.reserve(1)] = label === IGNORE_INDEX ? 0 : 1;
    }
    this.lengths.buffer.writeInt32LE(n, this.lengths.reserve(4));
    this.examples++;
    this.tokens += n;
  }

  close(): void {
    this.ids.close();
    this.trained.close();
    this.lengths.close();
  }
}

/** Appends the whole file `from` to `to` (a BufferedFile's way of joining shards). */
export function appendFile(to: { write(bytes: Uint8Array): void }, from: string): void {
  const fd = openSync(from, "r");
  try {
    const buf = Buffer.allocUnsafe(WRITE_BUFFER);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      to.write(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Joins shards (folders written by ExampleWriter), in order, into a prepared data set in `dir`, with
 * `meta` (its counts are checked against the shards').
 */
export function joinShards(dir: string, shards: readonly string[], meta: PreparedMeta): void {
  const ids = new BufferedFile(join(dir, IDS_FILE));
  const trained = new BufferedFile(join(dir, TRAINED_FILE));
  const offsets = new BufferedFile(join(dir, OFFSETS_FILE));
  let total = 0;
  let examples = 0;
  offsets.buffer.writeDoubleLE(0, offsets.reserve(8));
  try {
    for (const shard of shards) {
      appendFile(ids, join(shard, IDS_FILE));
      appendFile(trained, join(shard, TRAINED_FILE));
      const lengths = readFileSync(join(shard, "lengths.bin"));
      for (let at = 0; at < lengths.length; at += 4) {
        total += lengths.readInt32LE(at);
        offsets.buffer.writeDoubleLE(total, offsets.reserve(8));
        examples++;
      }
    }
  } finally {
    ids.close();
    trained.close();
    offsets.close();
  }
  if (examples !== meta.examples || total !== meta.tokens) {
    throw new LoraTsError(
      `prepared data: the shards hold ${examples} examples / ${total} tokens, expected ${meta.examples} / ${meta.tokens}`,
    );
  }
  const fd = openSync(join(dir, META_FILE), "wx");
  try {
    writeAll(fd, Buffer.from(`${JSON.stringify(meta, null, 1)}\n`));
  } finally {
    closeSync(fd);
  }
}

/** A prepared data set, opened for reading (see the module comment). */
export class PreparedData implements ExampleSource {
  readonly size: number;
  private readonly idsFd: number;
  private readonly trainedFd: number;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly meta: PreparedMeta,
    private readonly offsets: Float64Array,
    fds: [number, number],
  ) {
    this.size = meta.examples;
    [this.idsFd, this.trainedFd] = fds;
  }

  /**
   * Opens `dir`, checking meta.json and the files' sizes and offsets against each other; any mismatch
   * (or a missing or unreadable file) is a CorruptPreparedDataError naming the file.
   */
  static open(dir: string): PreparedData {
    const metaPath = join(dir, META_FILE);
    let meta: PreparedMeta;
    try {
      meta = JSON.parse(readFileSync(metaPath, "utf8")) as PreparedMeta;
    } catch (e) {
      throw new CorruptPreparedDataError(metaPath, `cannot read (${firstLine(e)})`);
    }
    const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    if (
      typeof meta !== "object" ||
      meta === null ||
      meta.format !== PREPARED_FORMAT ||
      meta.version !== PREPARED_VERSION ||
      !isCount(meta.examples) ||
      !isCount(meta.tokens) ||
      typeof meta.summary !== "object" ||
      meta.summary === null
    ) {
      throw new CorruptPreparedDataError(
        metaPath,
        `not a ${PREPARED_FORMAT} meta.json of version ${PREPARED_VERSION}`,
      );
    }
    const fds: number[] = [];
    try {
      const openSized = (name: string, bytes: number): number => {
        const p = join(dir, name);
        let fd: number;
        try {
          fd = openSync(p, "r");
        } catch (e) {
          throw new CorruptPreparedDataError(p, `cannot open (${firstLine(e)})`);
        }
        fds.push(fd);
        const size = fstatSync(fd).size;
        if (size !== bytes) {
          throw new CorruptPreparedDataError(p, `has ${size} bytes; meta.json says ${bytes}`);
        }
        return fd;
      };
      const idsFd = openSized(IDS_FILE, meta.tokens * 4);
      const trainedFd = openSized(TRAINED_FILE, meta.tokens);
      const offsetsFd = openSized(OFFSETS_FILE, (meta.examples + 1) * 8);
      const raw = Buffer.alloc((meta.examples + 1) * 8);
      readFully(offsetsFd, raw, 0);
      const offsets = new Float64Array(meta.examples + 1);
      let prev = 0;
      for (let i = 0; i <= meta.examples; i++) {
        const o = raw.readDoubleLE(i * 8);
        if (!(Number.isSafeInteger(o) && o >= prev && (i > 0 || o === 0))) {
          throw new CorruptPreparedDataError(join(dir, OFFSETS_FILE), `offset ${i} (${o}) is out of order`);
        }
        offsets[i] = prev = o;
      }
      if (prev !== meta.tokens) {
        throw new CorruptPreparedDataError(
          join(dir, OFFSETS_FILE),
          `ends at token ${prev}; meta.json says ${meta.tokens} tokens`,
        );
      }
      closeSync(offsetsFd);
      fds.pop();
      return new PreparedData(dir, meta, offsets, [idsFd, trainedFd]);
    } catch (e) {
      for (const fd of fds) closeSync(fd);
      throw e;
    }
  }

  length(i: number): number {
    return this.offsets[i + 1]! - this.offsets[i]!;
  }

  get(i: number): Example {
    if (!(Number.isInteger(i) && i >= 0 && i < this.size)) {
      throw new LoraTsError(`prepared data: no example ${i} (of ${this.size})`);
    }
    if (this.closed) throw new LoraTsError(`prepared data ${this.dir}: read after close`);
    const start = this.offsets[i]!;
    const n = this.offsets[i + 1]! - start;
    const idBytes = Buffer.allocUnsafe(n * 4);
    const trained = Buffer.allocUnsafe(n);
    readFully(this.idsFd, idBytes, start * 4);
    readFully(this.trainedFd, trained, start);
    const inputIds = new Array<number>(n);
    const labels = new Array<number>(n);
    for (let t = 0; t < n; t++) {
      const id = idBytes.readInt32LE(t * 4);
      inputIds[t] = id;
      labels[t] = trained[t] === 1 ? id : IGNORE_INDEX;
    }
    return { inputIds, labels };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.idsFd);
    closeSync(this.trainedFd);
  }
}

/** Fills `buf` from `fd` at `position` (a file shorter than that is corrupt). */
function readFully(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw new LoraTsError("prepared data: a file ended early (changed while open?)");
    done += n;
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}

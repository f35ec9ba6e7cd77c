/**
 * Data preparation at scale (issue #18): data files → a prepared data set on disk (prepared.ts), in
 * parallel, in bounded memory, with progress.
 *
 *  - JSONL (and a .json/.other file that is JSON lines) is never read as one string: the main thread
 *    reads the first non-blank line to detect the rows' format (formats.ts: every later row must have
 *    the same), then cuts the file into chunks of about `chunkBytes` at line starts, and worker threads
 *    (prepare-worker.ts, one per core by default) parse, tokenize and write one shard per chunk. With
 *    one worker the chunks run in the main thread through the same code.
 *  - A .txt document and a JSON array are read whole (a document is one row, and an array has to be
 *    parsed whole anyway) and prepared in the main thread.
 *  - Shards are joined in file order, so the result, statistics and row order included, is the same
 *    bytes whatever the number of workers. Errors too: every chunk before the first one with an error is
 *    finished, so that error is the first in the file, and its line / row number is counted from the
 *    start of the file (the chunks before it report their lines and rows).
 * Parquet files (by extension) are read a row group at a time in the main thread (parquet.ts), each
 * group's records parsed there and sent to a worker to tokenize. `columns` (--columns) renames every
 * record's columns before its format is read, whatever the file type.
 * Several files are read one after the other, their rows concatenated; the first file's first row sets
 * the format.
 */
import { closeSync, mkdirSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import type { ColumnMap } from "./columns.js";
import { readDataset } from "./dataset-file.js";
import {
  type DataSummary,
  ExampleBuilder,
  type ExampleOptions,
  type ExampleStats,
  rowError,
  summarizeExamples,
} from "./examples.js";
import {
  containerOf,
  type DataRow,
  extensionOf,
  type JsonRowFormat,
  parseJsonLine,
  parseRecord,
  RowError,
  type RowFormat,
} from "./formats.js";
import { countParquetRows, readParquetRecords } from "./parquet.js";
import {
  type ChunkJob,
  type ChunkProgress,
  type ChunkResult,
  type PrepareJob,
  prepareJob,
  toSettings,
} from "./prepare-chunk.js";
import type { PrepareWorkerData } from "./prepare-worker.js";
import {
  ExampleWriter,
  joinShards,
  PREPARED_FORMAT,
  PREPARED_VERSION,
  type PreparedMeta,
  rowAccounting,
} from "./prepared.js";
import type { Tokenizer } from "./tokenizer.js";

/** Where preparation stands (the trainer's onDataProgress). */
export interface DataProgress {
  /** "failed": preparation stopped on an error (a live progress line should be taken down). */
  stage: "start" | "running" | "done" | "failed";
  /** Rows read so far. */
  rows: number;
  /** Rows in all, when known before reading (not for JSON lines). */
  totalRows?: number;
  bytesDone: number;
  bytesTotal: number;
  /** Tokens written so far. */
  tokens: number;
  /** Since the start of preparation. */
  seconds: number;
  /** Threads preparing (1: the main thread). */
  workers: number;
  files: readonly string[];
}

export interface PrepareOptions {
  /** The data files, rows concatenated in this order. */
  files: readonly string[];
  tokenizer: Tokenizer;
  options: ExampleOptions;
  /** Worker threads (default: os.availableParallelism()); 1 prepares in the main thread. */
  workers?: number;
  /** Bytes of JSONL per chunk (default: chunkSize(); tests use less to have many chunks). */
  chunkBytes?: number;
  onProgress?: (p: DataProgress) => void;
  /** --columns: each record's columns renamed before its format is read (columns.ts). */
  columns?: ColumnMap;
}

/** A parquet record that is not a valid row, numbered within its row group until the coordinator counts. */
class ParquetRowError extends Error {
  constructor(
    readonly row: number,
    message: string,
  ) {
    super(message);
  }
}

/** The largest chunk by default: a worker's memory holds about one chunk's lines at a time. */
export const MAX_CHUNK_BYTES = 8 << 20;
/** The smallest chunk by default: a file below it is prepared in the main thread (starting workers and
 * building their tokenizers costs more than they would save). */
export const MIN_CHUNK_BYTES = 256 << 10;

/**
 * Default chunk size for a file of `size` bytes on `workers` threads: about four chunks per worker, so
 * that one slow chunk (long rows) does not leave the other workers idle at the end, within
 * [MIN_CHUNK_BYTES, MAX_CHUNK_BYTES].
 */
export function chunkSize(size: number, workers: number): number {
  return Math.min(MAX_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, Math.ceil(size / (workers * 4))));
}
/** How often (ms) progress is passed on while preparing. */
const PROGRESS_MS = 100;

/** The default number of preparation threads: one per core. */
export function defaultDataWorkers(): number {
  return Math.max(1, availableParallelism());
}

/** The error of a file that cannot be read, as readDataset says it. */
function readError(path: string, e: unknown): FileFormatError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new FileFormatError(path, "no such file");
  if (code === "EISDIR") return new FileFormatError(path, "is a directory, not a dataset file");
  return new FileFormatError(path, `cannot read (${(e as Error).message.replace(/\s*[\r\n]+\s*/g, " ")})`);
}

/** Calls `f` on the file's blocks of `size` bytes from `start`, until it returns false or the end. */
function eachBlock(path: string, start: number, size: number, f: (block: Buffer) => boolean): void {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw readError(path, e);
  }
  try {
    const buf = Buffer.allocUnsafe(size);
    let pos = start;
    for (;;) {
      const n = readSync(fd, buf, 0, size, pos);
      if (n === 0 || !f(buf.subarray(0, n))) return;
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** The first non-whitespace character of a file (undefined when there is none), as parseDataset sees it. */
function firstCharacter(path: string): string | undefined {
  let first: string | undefined;
  eachBlock(path, 0, 1 << 16, (b) => {
    first = b.toString("utf8").trimStart()[0];
    return first === undefined;
  });
  return first;
}

/** The format of a JSONL file's first non-blank line; errors as parseDataset's. */
function firstRowFormat(
  path: string,
  expected: JsonRowFormat | undefined,
  columns: ColumnMap | undefined,
): JsonRowFormat {
  let line = 0;
  let carry: Buffer[] = [];
  let format: JsonRowFormat | undefined;
  const handle = (bytes: Buffer): boolean => {
    line++;
    const text = bytes.toString("utf8").trim();
    if (text === "") return true;
    try {
      format = parseRecord(parseJsonLine(text), expected, columns).format;
    } catch (e) {
      if (e instanceof RowError) throw new FileFormatError(path, `line ${line}: ${e.message}`);
      throw e;
    }
    return false;
  };
  let more = true;
  eachBlock(path, 0, 1 << 16, (b) => {
    let s = 0;
    for (;;) {
      const nl = b.indexOf(10, s);
      if (nl < 0) break;
      const piece = b.subarray(s, nl);
      more = handle(carry.length > 0 ? Buffer.concat([...carry, piece]) : piece);
      carry = [];
      s = nl + 1;
      if (!more) return false;
    }
    if (s < b.length) carry.push(Buffer.from(b.subarray(s)));
    return true;
  });
  if (more && carry.length > 0) handle(Buffer.concat(carry));
  if (format === undefined) throw new FileFormatError(path, "the file has no rows");
  return format;
}

/** Chunk boundaries of a file: [0, b1, ..., size], each at a line start, about `count` chunks. */
export function chunkBounds(path: string, size: number, count: number): number[] {
  const bounds = [0];
  for (let k = 1; k < count; k++) {
    const target = Math.floor((size * k) / count);
    if (target <= bounds.at(-1)!) continue;
    // The first line start at or after target: just after the first "\n" from target - 1 on.
    let at = size;
    let pos = target - 1;
    eachBlock(path, pos, 1 << 16, (b) => {
      const nl = b.indexOf(10);
      if (nl >= 0) {
        at = pos + nl + 1;
        return false;
      }
      pos += b.length;
      return true;
    });
    if (at > bounds.at(-1)! && at < size) bounds.push(at);
  }
  bounds.push(size);
  return bounds;
}

/**
 * What a producer of jobs gives: the next job, or the error that ends the data at this job's place
 * (a parquet row that is not a valid row, a damaged row group), or null at the end.
 */
type Produced = { job: PrepareJob } | { index: number; error: unknown } | null;

/** A result slot: a job's result, or the error thrown in its place (see Produced). */
type Slot = ChunkResult | { index: number; thrown: unknown };

/** Runs jobs on worker threads; see PreparePool.run. */
class PreparePool {
  private readonly workers: Worker[] = [];

  constructor(n: number, data: PrepareWorkerData) {
    for (let i = 0; i < n; i++) {
      this.workers.push(new Worker(new URL("./prepare-worker.js", import.meta.url), { workerData: data }));
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /**
   * Prepares the jobs `produce` gives (indexed 0, 1, ... in file order; asked for one at a time, when
   * a worker is free, so parsed parquet rows wait in no queue) on the workers. After a job with an
   * error no later job is started; earlier ones finish, so the first error in the file is known.
   * Resolves with the slots by index; those not run are absent.
   */
  run(
    produce: () => Promise<Produced>,
    onProgress: (index: number, p: ChunkProgress) => void,
  ): Promise<Slot[]> {
    return new Promise((resolve, reject) => {
      const results: Slot[] = [];
      const idle = [...this.workers];
      let running = 0;
      let exhausted = false;
      let failed = false;
      let pumping = false;
      const cleanups: (() => void)[] = [];
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        for (const c of cleanups) c();
        reject(e);
      };
      const pump = async () => {
        if (pumping) return;
        pumping = true;
        try {
          while (!failed && !exhausted && idle.length > 0) {
            const p = await produce();
            if (p === null) exhausted = true;
            else if ("error" in p) {
              results[p.index] = { index: p.index, thrown: p.error };
              exhausted = true;
            } else {
              running++;
              idle.pop()!.postMessage(p.job);
            }
          }
        } finally {
          pumping = false;
        }
        if (!failed && exhausted && running === 0) {
          for (const c of cleanups) c();
          resolve(results);
        }
      };
      const kick = () => void pump().catch(fail);
      for (const w of this.workers) {
        const onMessage = (m: { type: string; index: number; result?: ChunkResult } & ChunkProgress) => {
          if (m.type === "progress") onProgress(m.index, m);
          else if (m.type === "done") {
            const r = m.result!;
            results[r.index] = r;
            // Nothing after a job with an error is started (later jobs have larger indices).
            if (r.error !== undefined) exhausted = true;
            running--;
            idle.push(w);
            kick();
          }
        };
        const onError = (e: Error) => fail(e);
        const onExit = (code: number) =>
          fail(new LoraTsError(`a data preparation thread exited (code ${code})`));
        w.on("message", onMessage);
        w.on("error", onError);
        w.on("exit", onExit);
        cleanups.push(() => {
          w.off("message", onMessage);
          w.off("error", onError);
          w.off("exit", onExit);
        });
      }
      kick();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** The same as PreparePool.run, in the main thread (one worker). */
async function runHere(
  produce: () => Promise<Produced>,
  o: PrepareOptions,
  onProgress: (index: number, p: ChunkProgress) => void,
): Promise<Slot[]> {
  const results: Slot[] = [];
  for (;;) {
    const p = await produce();
    if (p === null) break;
    if ("error" in p) {
      results[p.index] = { index: p.index, thrown: p.error };
      break;
    }
    const r = prepareJob(p.job, o.tokenizer, o.options, (q) => onProgress(p.job.index, q));
    results[r.index] = r;
    if (r.error !== undefined) break;
    // Lets timers (a progress line, a spinner) run between jobs.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return results;
}

const sumKeys = ["rows", "examples", "truncated", "dropped", "trainedTokens"] as const;

/**
 * Prepares `o.files` into the folder `dir` (created if needed; it should be empty): ids.bin,
 * trained.bin, offsets.bin and meta.json under their final names (the caller renames the folder into
 * place). Returns the meta.json written. Errors: one line naming the file and the line or row, as
 * buildExamples gives them.
 */
export async function prepareData(dir: string, o: PrepareOptions): Promise<PreparedMeta> {
  const files = [...o.files];
  if (files.length === 0) throw new LoraTsError("prepareData: no data file");
  const t0 = performance.now();
  const workerCount = Math.max(1, Math.floor(o.workers ?? defaultDataWorkers()));
  const chunksOf = (size: number) =>
    Math.ceil(size / Math.max(1, Math.floor(o.chunkBytes ?? chunkSize(size, workerCount))));
  const sizes = files.map((f) => {
    try {
      const st = statSync(f);
      if (st.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
      return st.size;
    } catch (e) {
      throw readError(f, e);
    }
  });
  const bytesTotal = sizes.reduce((a, b) => a + b, 0);

  // Progress: finished files, plus the chunks of the file in hand.
  let doneBytes = 0;
  let doneRows = 0;
  let doneTokens = 0;
  const live = new Map<number, ChunkProgress>();
  let lastEmit = 0;
  const containers = files.map((f) =>
    extensionOf(f) === ".parquet" ? "parquet" : containerOf(f, firstCharacter(f)),
  );
  // Threads: the workers when some file has more than one chunk or is parquet, else the main thread.
  const planned = Math.max(
    1,
    ...files.map((_, f) =>
      containers[f] === "parquet" ? workerCount : containers[f] === "jsonl" ? chunksOf(sizes[f]!) : 1,
    ),
  );
  let workersUsed = workerCount > 1 ? Math.min(workerCount, planned) : 1;
  // Parquet files say how many rows they hold (JSON lines do not): the total, when every file does.
  const rowCounts = new Map<number, number>();
  for (const [f, c] of containers.entries())
    if (c === "parquet") rowCounts.set(f, await countParquetRows(files[f]!));
  const totalRows =
    rowCounts.size === files.length ? [...rowCounts.values()].reduce((a, b) => a + b, 0) : undefined;
  // Every file is checked before anything is written.
  mkdirSync(dir, { recursive: true });
  const shardsRoot = join(dir, "shards");
  mkdirSync(shardsRoot);
  const progress = (stage: DataProgress["stage"], force = false) => {
    if (o.onProgress === undefined) return;
    const now = performance.now();
    if (!force && now - lastEmit < PROGRESS_MS) return;
    lastEmit = now;
    let bytes = doneBytes;
    let rows = doneRows;
    let tokens = doneTokens;
    for (const p of live.values()) {
      bytes += p.bytes;
      rows += p.rows;
      tokens += p.tokens;
    }
    o.onProgress({
      stage,
      rows,
      bytesDone: bytes,
      bytesTotal,
      tokens,
      seconds: (now - t0) / 1000,
      ...(totalRows !== undefined ? { totalRows } : {}),
      workers: workersUsed,
      files,
    });
  };

  const stats: ExampleStats = { rows: 0, examples: 0, truncated: 0, dropped: 0, trainedTokens: 0 };
  let droppedByTruncation = 0;
  let tokens = 0;
  const shards: string[] = [];
  let format: RowFormat | undefined;
  let pool: PreparePool | null = null;
  const addStats = (r: ExampleStats & { droppedByTruncation: number; tokens: number }) => {
    for (const k of sumKeys) stats[k] += r[k];
    droppedByTruncation += r.droppedByTruncation;
    tokens += r.tokens;
  };
  progress("start", true);
  try {
    return await prepareFiles();
  } catch (e) {
    progress("failed", true);
    throw e;
  }

  async function prepareFiles(): Promise<PreparedMeta> {
    try {
      for (let f = 0; f < files.length; f++) {
        const path = files[f]!;
        const size = sizes[f]!;
        if (containers[f] === "document" || containers[f] === "array") {
          // A .txt document or a JSON array: read whole (see the module comment), in the main thread.
          const data = readDataset(path, { columns: o.columns });
          if (format !== undefined && data.format !== format) {
            throw new FileFormatError(path, `its rows are ${data.format}, but ${files[0]}'s are ${format}`);
          }
          format = data.format;
          const shard = join(shardsRoot, String(shards.length));
          shards.push(shard);
          const r = prepareRows(data.rows, shard, o, `${path}: `, (rows, tok) => {
            live.set(-1, { bytes: 0, rows, tokens: tok });
            progress("running");
          });
          live.clear();
          addStats(r);
        } else {
          // JSON lines or parquet: jobs on the workers, produced in file order.
          let produce: () => Promise<Produced>;
          let fileRows = 0; // parquet: rows in the file, for progress by bytes
          const base = shards.length;
          const shardOf = (index: number) => join(shardsRoot, String(base + index));
          if (containers[f] === "jsonl") {
            const fileFormat = firstRowFormat(path, format as JsonRowFormat | undefined, o.columns);
            format ??= fileFormat;
            const count = chunksOf(size);
            const bounds = chunkBounds(path, size, count);
            let k = 0;
            produce = async () => {
              if (k + 1 >= bounds.length) return null;
              const job: ChunkJob = {
                kind: "jsonl",
                index: k,
                path,
                start: bounds[k]!,
                end: bounds[k + 1]!,
                format: fileFormat,
                shardDir: shardOf(k),
                ...(o.columns !== undefined ? { columns: o.columns } : {}),
              };
              k++;
              return { job };
            };
          } else {
            fileRows = rowCounts.get(f)!;
            const groups = readParquetRecords(path);
            let k = 0;
            produce = async () => {
              const index = k++;
              let next: IteratorResult<Record<string, unknown>[]>;
              try {
                next = await groups.next();
              } catch (error) {
                return { index, error };
              }
              if (next.done) return null;
              const rows: DataRow[] = [];
              for (const record of next.value) {
                try {
                  const r = parseRecord(record, format as JsonRowFormat | undefined, o.columns);
                  format ??= r.format;
                  rows.push(r.row);
                } catch (e) {
                  if (!(e instanceof RowError)) return { index, error: e };
                  // Numbered from the file's first row once the rows before it are counted (below).
                  return { index, error: new ParquetRowError(rows.length, e.message) };
                }
              }
              return { job: { kind: "rows", index, rows, shardDir: shardOf(index) } };
            };
          }
          const onJob = (index: number, p: ChunkProgress) => {
            live.set(index, fileRows > 0 ? { ...p, bytes: Math.round((size * p.rows) / fileRows) } : p);
            progress("running");
          };
          let results: Slot[];
          if (workersUsed > 1 && (containers[f] === "parquet" || chunksOf(size) > 1)) {
            pool ??= new PreparePool(workersUsed, {
              tokenizerJson: o.tokenizer.tokenizerJson,
              tokenizerConfig: o.tokenizer.tokenizerConfig,
              tokenizerSource: o.tokenizer.source,
              settings: toSettings(o.options),
            });
            workersUsed = pool.size;
            results = await pool.run(produce, onJob);
          } else {
            results = await runHere(produce, o, onJob);
          }
          // In file order: the first error is the file's first; lines and rows count from its start.
          let lines = 0;
          let rows = 0;
          for (const r of results) {
            if (r === undefined) break;
            if ("thrown" in r) {
              const e = r.thrown;
              if (e instanceof ParquetRowError)
                throw new FileFormatError(path, `row index ${rows + e.row}: ${e.message}`);
              throw e;
            }
            const e = r.error;
            if (e?.kind === "line") throw new FileFormatError(path, `line ${lines + e.line}: ${e.message}`);
            if (e?.kind === "row") throw rowError(`${path}: `, rows + e.row, new LoraTsError(e.message));
            if (e?.kind === "record")
              throw new FileFormatError(path, `row index ${rows + e.row}: ${e.message}`);
            if (e?.kind === "other") throw e.user ? new LoraTsError(e.message) : new Error(e.message);
            lines += r.newlines;
            rows += r.rows;
            addStats(r);
            shards.push(shardOf(r.index));
          }
          if (rows === 0) throw new FileFormatError(path, "the file has no rows");
          live.clear();
        }
        doneBytes += size;
        doneRows = stats.rows;
        doneTokens = tokens;
      }
    } finally {
      await (pool as PreparePool | null)?.close();
    }

    const where = files.length === 1 ? `${files[0]}: ` : `${files[0]} (and ${files.length - 1} more): `;
    const summary: DataSummary = summarizeExamples(
      stats,
      droppedByTruncation,
      o.options.maxLength,
      where,
      files.length === 1 ? files[0] : undefined,
    );
    const meta: PreparedMeta = {
      format: PREPARED_FORMAT,
      version: PREPARED_VERSION,
      examples: stats.examples,
      tokens,
      rowFormat: format!,
      files,
      summary,
      rows: rowAccounting(summary),
    };
    joinShards(dir, shards, meta);
    rmSync(shardsRoot, { recursive: true, force: true });
    progress("done", true);
    return meta;
  }
}

/** Rows in memory (a document, a JSON array) → one shard, in the main thread. */
function prepareRows(
  rows: readonly DataRow[],
  shardDir: string,
  o: PrepareOptions,
  where: string,
  onProgress: (rows: number, tokens: number) => void,
): ExampleStats & { droppedByTruncation: number; tokens: number } {
  const builder = new ExampleBuilder(o.tokenizer, o.options);
  mkdirSync(shardDir, { recursive: true });
  const writer = new ExampleWriter(shardDir);
  try {
    rows.forEach((row, i) => {
      try {
        for (const ex of builder.add(row)) writer.add(ex);
      } catch (e) {
        throw rowError(where, i, e);
      }
      if ((i & 63) === 63) onProgress(i + 1, writer.tokens);
    });
  } finally {
    writer.close();
  }
  return { ...builder.stats, droppedByTruncation: builder.droppedByTruncation, tokens: writer.tokens };
}

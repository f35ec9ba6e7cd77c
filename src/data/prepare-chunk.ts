/**
 * One piece of data preparation: a byte range of a JSONL file (starting at a line start, ending at a
 * line end) parsed, tokenized and written as a shard (prepared.ts's ExampleWriter), or rows the main
 * thread parsed already (a parquet row group) tokenized and written. The same code runs
 * in a worker thread (prepare-worker.ts) and, with one worker, in the main thread (prepare.ts), so the
 * two give the same bytes.
 *
 * Lines are split on the byte 0x0A, which never occurs inside a UTF-8 multi-byte sequence, and each
 * line is decoded on its own: the same text as decoding the whole file and splitting it on "\n".
 * The file is never held whole: it is read in blocks, and only the current line is kept.
 *
 * Errors are not thrown but returned with the chunk's own line / row number, and the chunk stops there:
 * the coordinator knows how many lines and rows came before the chunk and names the file and the
 * line of the whole file, the first in file order.
 */
import { closeSync, mkdirSync, openSync, readSync } from "node:fs";
import { LoraTsError } from "../util/errors.js";
import { ChatTemplate } from "./chat-template.js";
import type { ColumnMap } from "./columns.js";
import { ExampleBuilder, type ExampleOptions } from "./examples.js";
import { type DataRow, type JsonRowFormat, parseJsonLine, parseRecord, RowError } from "./formats.js";
import { ExampleWriter } from "./prepared.js";
import type { Tokenizer } from "./tokenizer.js";

/** ExampleOptions as plain data, for a worker thread (the chat template as its source). */
export interface ExampleSettings extends Omit<ExampleOptions, "chatTemplate"> {
  chatTemplate?: { source: string; specialTokens: Record<string, string> };
}

export function toSettings(o: ExampleOptions): ExampleSettings {
  const { chatTemplate, ...rest } = o;
  return chatTemplate === undefined
    ? rest
    : { ...rest, chatTemplate: { source: chatTemplate.source, specialTokens: chatTemplate.specialTokens } };
}

export function fromSettings(s: ExampleSettings, tok: Tokenizer): ExampleOptions {
  const { chatTemplate, ...rest } = s;
  return {
    ...rest,
    chatTemplate:
      chatTemplate === undefined
        ? ChatTemplate.forTokenizer(tok)
        : new ChatTemplate(chatTemplate.source, chatTemplate.specialTokens),
  };
}

export interface ChunkJob {
  kind: "jsonl";
  /** Index of the chunk in file order. */
  index: number;
  path: string;
  /** --columns: the records' columns renamed before their format is read. */
  columns?: ColumnMap;
  start: number;
  end: number;
  /** The format of the data's first row, which every row must have. */
  format: JsonRowFormat;
  /** The shard folder to create and write. */
  shardDir: string;
}

/** Rows already parsed (a parquet row group), to tokenize and write as a shard. */
export interface RowsJob {
  kind: "rows";
  index: number;
  rows: DataRow[];
  shardDir: string;
}

export type PrepareJob = ChunkJob | RowsJob;

/** A problem in a chunk, numbered within the chunk. */
export type ChunkError =
  /** A line that is not a valid row (1-based line within the chunk). */
  | { kind: "line"; line: number; message: string }
  /** A row whose examples could not be made (0-based row within the chunk); a LoraTsError's message. */
  | { kind: "row"; row: number; message: string }
  /** A parsed record that is not a valid row (0-based row within the job; parquet). */
  | { kind: "record"; row: number; message: string }
  /** Anything else: a one-line LoraTsError (`user`), or a bug / an I/O error. */
  | { kind: "other"; message: string; user: boolean };

/** A thrown value as a ChunkError: its message, and whether it is the user's (a LoraTsError). */
function otherError(e: unknown): ChunkError {
  return {
    kind: "other",
    message: e instanceof Error ? e.message : String(e),
    user: e instanceof LoraTsError,
  };
}

export interface ChunkResult {
  index: number;
  /** Rows read (parsed and made into examples). */
  rows: number;
  examples: number;
  truncated: number;
  dropped: number;
  droppedByTruncation: number;
  trainedTokens: number;
  /** Tokens written. */
  tokens: number;
  /** Line breaks in the chunk (the lines before the next chunk). */
  newlines: number;
  error?: ChunkError;
}

export interface ChunkProgress {
  /** Bytes of the chunk read so far. */
  bytes: number;
  rows: number;
  tokens: number;
}

/** Bytes read at a time. */
const BLOCK = 1 << 22;
/** How often (ms) a chunk reports its progress. */
const PROGRESS_MS = 100;

/** Prepares one job (see the module comment). */
export function prepareJob(
  job: PrepareJob,
  tok: Tokenizer,
  options: ExampleOptions,
  onProgress: (p: ChunkProgress) => void = () => {},
): ChunkResult {
  return job.kind === "jsonl"
    ? prepareChunk(job, tok, options, onProgress)
    : prepareRowsJob(job, tok, options, onProgress);
}

/** Rows → a shard; an error is numbered by the row within the job. */
function prepareRowsJob(
  job: RowsJob,
  tok: Tokenizer,
  options: ExampleOptions,
  onProgress: (p: ChunkProgress) => void,
): ChunkResult {
  const builder = new ExampleBuilder(tok, options);
  mkdirSync(job.shardDir, { recursive: true });
  const writer = new ExampleWriter(job.shardDir);
  let error: ChunkError | undefined;
  try {
    for (let i = 0; i < job.rows.length; i++) {
      try {
        for (const ex of builder.add(job.rows[i]!)) writer.add(ex);
      } catch (e) {
        if (!(e instanceof LoraTsError)) throw e;
        error = { kind: "row", row: i, message: e.message };
        break;
      }
    }
  } catch (e) {
    error = otherError(e);
  } finally {
    writer.close();
  }
  onProgress({ bytes: 0, rows: builder.stats.rows, tokens: writer.tokens });
  return resultOf(job.index, builder, writer.tokens, 0, error);
}

export function resultOf(
  index: number,
  builder: ExampleBuilder,
  tokens: number,
  newlines: number,
  error: ChunkError | undefined,
): ChunkResult {
  const s = builder.stats;
  return {
    index,
    rows: s.rows,
    examples: s.examples,
    truncated: s.truncated,
    dropped: s.dropped,
    droppedByTruncation: builder.droppedByTruncation,
    trainedTokens: s.trainedTokens,
    tokens,
    newlines,
    ...(error !== undefined ? { error } : {}),
  };
}

/** Prepares one JSONL chunk (see the module comment). */
export function prepareChunk(
  job: ChunkJob,
  tok: Tokenizer,
  options: ExampleOptions,
  onProgress: (p: ChunkProgress) => void = () => {},
): ChunkResult {
  const builder = new ExampleBuilder(tok, options);
  mkdirSync(job.shardDir, { recursive: true });
  const writer = new ExampleWriter(job.shardDir);
  let newlines = 0;
  let line = 0;
  let rowIndex = 0;
  let error: ChunkError | undefined;
  let lastReport = Date.now();
  /** Bytes of the chunk up to the end of the line in hand (progress by bytes done, not read ahead). */
  let bytesDone = 0;

  /** Handles one line; false when it was an error (and the chunk stops). */
  const handle = (bytes: Buffer): boolean => {
    line++;
    const text = bytes.toString("utf8").trim();
    if (text === "") return true;
    let row: DataRow;
    try {
      row = parseRecord(parseJsonLine(text), job.format, job.columns).row;
    } catch (e) {
      if (!(e instanceof RowError)) throw e;
      error = { kind: "line", line, message: e.message };
      return false;
    }
    try {
      for (const ex of builder.add(row)) writer.add(ex);
    } catch (e) {
      if (!(e instanceof LoraTsError)) throw e;
      error = { kind: "row", row: rowIndex, message: e.message };
      return false;
    }
    rowIndex++;
    if ((rowIndex & 63) === 0) {
      const now = Date.now();
      if (now - lastReport >= PROGRESS_MS) {
        lastReport = now;
        onProgress({ bytes: bytesDone, rows: rowIndex, tokens: writer.tokens });
      }
    }
    return true;
  };

  const fd = openSync(job.path, "r");
  try {
    const block = Buffer.allocUnsafe(Math.min(BLOCK, Math.max(1, job.end - job.start)));
    let carry: Buffer[] = [];
    let pos = job.start;
    reading: while (pos < job.end) {
      const n = readSync(fd, block, 0, Math.min(block.length, job.end - pos), pos);
      if (n === 0) throw new LoraTsError(`${job.path}: the file got shorter while it was read`);
      const data = block.subarray(0, n);
      const blockStart = pos - job.start;
      pos += n;
      let s = 0;
      for (;;) {
        const nl = data.indexOf(10, s);
        if (nl < 0) break;
        newlines++;
        const piece = data.subarray(s, nl);
        const bytes = carry.length > 0 ? Buffer.concat([...carry, piece]) : piece;
        carry = [];
        s = nl + 1;
        bytesDone = blockStart + s;
        if (!handle(bytes)) break reading;
      }
      // The block is reused: the unfinished line is copied.
      if (s < n) carry.push(Buffer.from(data.subarray(s)));
    }
    if (error === undefined && carry.length > 0) handle(Buffer.concat(carry));
  } catch (e) {
    error = otherError(e);
  } finally {
    closeSync(fd);
    writer.close();
  }
  onProgress({ bytes: job.end - job.start, rows: rowIndex, tokens: writer.tokens });
  return resultOf(job.index, builder, writer.tokens, newlines, error);
}

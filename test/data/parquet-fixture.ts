/**
 * Parquet files for tests, written by hyparquet-writer when the test runs (no binary fixtures in
 * the repository): chat rows with a list<struct<role, content>> column, prompt/completion rows.
 */
import { gzipSync } from "node:zlib";
import { type ColumnSource, parquetWriteBuffer } from "hyparquet-writer";

export interface ParquetOptions {
  /** Rows per row group. */
  rowGroupSize?: number;
  /** LZ4 is written uncompressed under LZ4's name: for the reader's unsupported-codec error. */
  codec?: "UNCOMPRESSED" | "SNAPPY" | "GZIP" | "LZ4";
}

/** A parquet file's bytes from columns (name → values; types guessed unless given). */
export function parquetBytes(
  columns: { name: string; data: unknown[]; type?: ColumnSource["type"] }[],
  opts: ParquetOptions = {},
): Uint8Array {
  const buf = parquetWriteBuffer({
    columnData: columns.map((c) => ({ ...c, data: c.data as ColumnSource["data"] })),
    rowGroupSize: opts.rowGroupSize ?? 1000,
    codec: opts.codec ?? "SNAPPY",
    compressors: {
      GZIP: (input: Uint8Array) => new Uint8Array(gzipSync(input)),
      LZ4: (input: Uint8Array) => input,
    },
  });
  return new Uint8Array(buf);
}

/** `n` prompt/completion rows: `q<i>` → `a<i>`, under the given column names. */
export function promptCompletionParquet(
  n: number,
  names: { prompt: string; completion: string } = { prompt: "prompt", completion: "completion" },
  opts: ParquetOptions = {},
): Uint8Array {
  const rows = Array.from({ length: n }, (_, i) => i);
  return parquetBytes(
    [
      { name: names.prompt, data: rows.map((i) => `q${i}`), type: "STRING" },
      { name: names.completion, data: rows.map((i) => `a${i}`), type: "STRING" },
    ],
    opts,
  );
}

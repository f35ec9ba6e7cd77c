/**
 * Checks on a parquet file's structure before hyparquet decodes it. hyparquet trusts the counts and
 * sizes it reads: a damaged page header that claims 2³⁰ values sends its RLE decoder into a loop of
 * minutes, and a damaged size allocates gigabytes. So, before a row group is decoded:
 *  - from the footer: every column chunk lies inside the file, the row groups' rows add up to the
 *    file's, and a column with no repeated level holds exactly one value per row;
 *  - from the page headers: each page lies inside its chunk, is no larger unpacked than the footer
 *    says the whole chunk is, and the data pages' values add up to the chunk's.
 * Each fault is thrown as a one-line FileFormatError naming the file.
 */
import type { FileMetaData, RowGroup, SchemaTree } from "hyparquet";
import { parquetSchema } from "hyparquet";
import { parquetHeader } from "hyparquet/src/column.js";
import { FileFormatError } from "../util/errors.js";

const DAMAGED = "truncated or damaged parquet file";

/** Where a column chunk's bytes are: [start, end). Some writers put 0 for "no dictionary page". */
export function chunkRange(meta: {
  dictionary_page_offset?: bigint;
  data_page_offset: bigint;
  total_compressed_size: bigint;
}): [number, number] {
  const start = Number(meta.dictionary_page_offset || meta.data_page_offset);
  return [start, start + Number(meta.total_compressed_size)];
}

/** The byte span of all of a row group's column chunks. */
export function groupRange(group: RowGroup): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (const col of group.columns) {
    if (!col.meta_data) continue;
    const [s, e] = chunkRange(col.meta_data);
    lo = Math.min(lo, s);
    hi = Math.max(hi, e);
  }
  return lo > hi ? [0, 0] : [lo, hi];
}

/**
 * Every leaf column's path ("a.b.c"), in schema order, each with whether it has a repeated level
 * (a list): only those may hold other than one value a row.
 */
function leaves(meta: FileMetaData): [string, boolean][] {
  const out: [string, boolean][] = [];
  const walk = (node: SchemaTree, path: string[], repeated: boolean) => {
    const rep = repeated || node.element.repetition_type === "REPEATED";
    if (node.children.length === 0) out.push([path.join("."), rep]);
    for (const c of node.children) walk(c, [...path, c.element.name], rep);
  };
  for (const c of parquetSchema(meta).children) walk(c, [c.element.name], false);
  return out;
}

/** The footer's own consistency (see the file comment); `size` is the file's length. */
export function checkFooter(path: string, meta: FileMetaData, size: number): void {
  try {
    checkFooterFields(path, meta, size);
  } catch (e) {
    // A damaged footer can hold fields of the wrong thrift type, which fail in any odd way here.
    if (e instanceof FileFormatError) throw e;
    throw new FileFormatError(path, `damaged parquet footer (${firstLine(e)})`);
  }
}

function checkFooterFields(path: string, meta: FileMetaData, size: number): void {
  const schema = leaves(meta);
  let rows = 0n;
  for (const [i, g] of meta.row_groups.entries()) {
    rows += BigInt(g.num_rows);
    // hyparquet matches chunks to the schema by path; a chunk that matches no column would be
    // decoded with nobody awaiting it, so its failure would escape as an unhandled rejection.
    if (g.columns.length !== schema.length) {
      throw new FileFormatError(
        path,
        `${DAMAGED}: row group ${i} has ${g.columns.length} columns, the schema ${schema.length}`,
      );
    }
    for (const [j, col] of g.columns.entries()) {
      const m = col.meta_data;
      if (!m) throw new FileFormatError(path, `${DAMAGED}: row group ${i} has a column without metadata`);
      const name = m.path_in_schema.join(".");
      const [leaf, repeated] = schema[j]!;
      if (name !== leaf) {
        throw new FileFormatError(
          path,
          `${DAMAGED}: row group ${i} column ${j} is ${JSON.stringify(name)}, the schema says ${JSON.stringify(leaf)}`,
        );
      }
      const [start, end] = chunkRange(m);
      if (!(start >= 0 && end <= size && end >= start)) {
        throw new FileFormatError(
          path,
          `${DAMAGED}: row group ${i} column ${name} lies at bytes ${start}-${end} of a ${size}-byte file`,
        );
      }
      if (!repeated && BigInt(m.num_values) !== BigInt(g.num_rows)) {
        throw new FileFormatError(
          path,
          `${DAMAGED}: row group ${i} column ${name} has ${m.num_values} values for ${g.num_rows} rows`,
        );
      }
    }
  }
  if (rows !== BigInt(meta.num_rows)) {
    throw new FileFormatError(
      path,
      `damaged parquet footer: its row groups hold ${rows} rows but it says ${meta.num_rows}`,
    );
  }
}

/**
 * The page headers of row group `index`, whose bytes from offset `base` of the file are `bytes`
 * (the span groupRange gives).
 */
export function checkPages(
  path: string,
  group: RowGroup,
  index: number,
  bytes: Uint8Array,
  base: number,
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const col of group.columns) {
    const m = col.meta_data!;
    const name = m.path_in_schema.join(".");
    const where = `row group ${index} column ${name}`;
    const [start, end] = chunkRange(m);
    const reader = { view, offset: start - base };
    const stop = end - base;
    const unpacked = Number(m.total_uncompressed_size);
    let values = 0;
    while (reader.offset < stop) {
      let h: ReturnType<typeof parquetHeader>;
      try {
        h = parquetHeader(reader);
      } catch (e) {
        throw new FileFormatError(
          path,
          `${DAMAGED}: ${where}: a page header does not parse (${firstLine(e)})`,
        );
      }
      const size = h.compressed_page_size;
      const out = h.uncompressed_page_size;
      if (!(Number.isInteger(size) && size >= 0 && reader.offset + size <= stop)) {
        throw new FileFormatError(path, `${DAMAGED}: ${where}: a page runs past the end of its column chunk`);
      }
      if (!(Number.isInteger(out) && out >= 0 && out <= unpacked)) {
        throw new FileFormatError(
          path,
          `${DAMAGED}: ${where}: a page claims ${out} bytes unpacked, more than the column's ${unpacked}`,
        );
      }
      const n = h.data_page_header?.num_values ?? h.data_page_header_v2?.num_values ?? 0;
      if (!(Number.isInteger(n) && n >= 0)) {
        throw new FileFormatError(path, `${DAMAGED}: ${where}: a page claims ${n} values`);
      }
      values += n;
      reader.offset += size;
    }
    if (BigInt(values) !== BigInt(m.num_values)) {
      throw new FileFormatError(
        path,
        `${DAMAGED}: ${where}: its pages hold ${values} values but the footer says ${m.num_values}`,
      );
    }
  }
}

function firstLine(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).split("\n")[0]!.trim();
}

/**
 * `--columns prompt=question,completion=answer`: renames a data set's columns to the names a row
 * format reads (formats.ts), so a data set whose columns are called otherwise needs no conversion.
 * The renamed record then goes through formats.ts's detection like any other row.
 *
 * Only the mapped columns are renamed; every other column is kept as it is (and a kept column of a
 * format's name still counts, e.g. an `input` column beside `instruction=question`). A mapped
 * source column is removed under its old name, so `text=body` on a row with `{body, text}` reads body.
 */
import { LoraTsError } from "../util/errors.js";

/** The format's field name → the data set's column name. */
export type ColumnMap = Readonly<Record<string, string>>;

/** Every field name some row format of formats.ts reads. */
export const FORMAT_FIELDS = [
  "text",
  "prompt",
  "completion",
  "instruction",
  "input",
  "output",
  "messages",
  "conversations",
] as const;

const FLAG = "--columns";

/**
 * Parses `name=column[,name=column...]`. Spaces around names are dropped. A malformed entry, an
 * empty name, a field named twice or a column used twice, or a field no row format reads is a
 * one-line LoraTsError naming --columns.
 */
export function parseColumnMap(flag: string): ColumnMap {
  const map: Record<string, string> = {};
  const used = new Map<string, string>();
  const entries = flag.split(",");
  if (flag.trim() === "") throw new LoraTsError(`${FLAG}: empty; expected name=column, e.g. prompt=question`);
  for (const raw of entries) {
    const entry = raw.trim();
    const eq = entry.indexOf("=");
    if (eq < 0) {
      throw new LoraTsError(
        `${FLAG}: ${JSON.stringify(entry)} is not name=column (e.g. ${FLAG} prompt=question,completion=answer)`,
      );
    }
    const name = entry.slice(0, eq).trim();
    const column = entry.slice(eq + 1).trim();
    if (name === "" || column === "") {
      throw new LoraTsError(
        `${FLAG}: ${JSON.stringify(entry)} has an empty ${name === "" ? "name" : "column"}`,
      );
    }
    if (!(FORMAT_FIELDS as readonly string[]).includes(name)) {
      throw new LoraTsError(
        `${FLAG}: no row format reads a field "${name}"; the names are ${FORMAT_FIELDS.join(", ")}`,
      );
    }
    if (Object.hasOwn(map, name)) throw new LoraTsError(`${FLAG}: "${name}" is mapped twice`);
    const other = used.get(column);
    if (other !== undefined) {
      throw new LoraTsError(`${FLAG}: column "${column}" is mapped to both "${other}" and "${name}"`);
    }
    map[name] = column;
    used.set(column, name);
  }
  return Object.freeze(map);
}

/** The flag as written back, for messages: `prompt=question,completion=answer`. */
export function formatColumnMap(map: ColumnMap): string {
  return Object.entries(map)
    .map(([name, column]) => `${name}=${column}`)
    .join(",");
}

/**
 * A new record with the mapped columns renamed (see the file comment; `record` itself when the map is
 * empty); `record` is not changed.
 * A missing source column is an Error naming it and the mapping, e.g.
 * `missing column "question" (--columns prompt=question)`; the caller adds the file and the line.
 */
export function applyColumnMap(record: Record<string, unknown>, map: ColumnMap): Record<string, unknown> {
  const names = Object.keys(map);
  if (names.length === 0) return record;
  const sources = new Set(Object.values(map));
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(record)) if (!sources.has(k)) out[k] = record[k];
  for (const name of names) {
    const column = map[name]!;
    if (!Object.hasOwn(record, column)) {
      throw new Error(
        `missing column "${column}" (${FLAG} ${name}=${column}); the row has ${describeColumns(Object.keys(record))}`,
      );
    }
    out[name] = record[column];
  }
  return out;
}

/**
 * `columns: a, b, c` for hints on a row no format recognises, with a suggestion of --columns when
 * the names look like a common pair (question/answer, ...).
 */
export function describeColumns(keys: string[]): string {
  const list = keys.length === 0 ? "no columns" : `columns ${keys.map((k) => JSON.stringify(k)).join(", ")}`;
  const hint = suggestColumns(keys);
  return hint ? `${list} (try ${FLAG} ${hint})` : list;
}

/** Common column names of instruction data sets, and the field each plays. */
const LIKELY: readonly [RegExp, (typeof FORMAT_FIELDS)[number]][] = [
  [/^(question|query|prompt|instruction|problem|input_text|source)$/i, "prompt"],
  [/^(answer|response|completion|output|solution|target|output_text|chosen)$/i, "completion"],
  [/^(chat|dialog|dialogue|conversation|turns)$/i, "messages"],
  [/^(content|body|document|sentence|passage)$/i, "text"],
];

function suggestColumns(keys: string[]): string | undefined {
  const pick = (field: string) => keys.find((k) => LIKELY.some(([re, f]) => f === field && re.test(k)));
  const prompt = pick("prompt");
  const completion = pick("completion");
  if (prompt && completion) return `prompt=${prompt},completion=${completion}`;
  const messages = pick("messages");
  if (messages) return `messages=${messages}`;
  const text = pick("text");
  return text ? `text=${text}` : undefined;
}

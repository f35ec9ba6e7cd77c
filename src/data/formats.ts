/**
 * Dataset files → typed rows.
 *
 * Files:
 *  - `.txt`: one plain-text document (a single `document` row; examples.ts tokenizes it whole and cuts
 *    it into max-length windows).
 *  - `.jsonl`: one JSON object per line (blank lines are skipped).
 *  - `.json`: a JSON array of objects (a `.json` file whose first non-blank character is `{` is read as
 *    JSONL, since many "json" datasets are really JSON lines).
 *  - any other extension: sniffed the same way (`[` → array, `{` → JSONL), else rejected.
 *
 * Row formats, detected from the FIRST row of a file; every later row must have the same format:
 *  - text:               `{"text": string}`
 *  - prompt-completion:  `{"prompt": string, "completion": string}`
 *  - alpaca:             `{"instruction": string, "input"?: string, "output": string}`
 *  - chat:               `{"messages": [{"role": "system"|"user"|"assistant", "content": string}, ...]}`
 *  - sharegpt:           `{"conversations": [{"from": "system"|"human"|"gpt"|"user"|"assistant",
 *                          "value": string}, ...]}` — normalised to chat messages (human → user,
 *                          gpt → assistant).
 * Extra fields (e.g. "id") are ignored. A bad row is a FileFormatError naming the file and the 1-based
 * line (JSONL) or the 0-based row index (JSON array), e.g.
 * `data.jsonl: line 7: invalid JSON (Unexpected token ...)`.
 */
import { FileFormatError } from "../util/errors.js";
import { applyColumnMap, type ColumnMap } from "./columns.js";

export type Role = "system" | "user" | "assistant";

export interface ChatMessage {
  role: Role;
  content: string;
}

export type RowFormat = "plaintext" | "text" | "prompt-completion" | "alpaca" | "chat" | "sharegpt";

export type DataRow =
  /** A whole plain-text file, chunked into windows later. */
  | { kind: "document"; text: string }
  | { kind: "text"; text: string }
  | { kind: "prompt-completion"; prompt: string; completion: string }
  /** `input` is "" when the row has none. */
  | { kind: "alpaca"; instruction: string; input: string; output: string }
  /** Both chat and ShareGPT rows. */
  | { kind: "chat"; messages: ChatMessage[] };

export interface DataFile {
  path: string;
  format: RowFormat;
  rows: DataRow[];
}

const FORMAT_NAMES: Record<Exclude<RowFormat, "plaintext">, string> = {
  text: 'text ({"text"})',
  "prompt-completion": 'prompt/completion ({"prompt","completion"})',
  alpaca: 'Alpaca ({"instruction","input","output"})',
  chat: 'chat ({"messages":[{"role","content"}]})',
  sharegpt: 'ShareGPT ({"conversations":[{"from","value"}]})',
};

const SHAREGPT_ROLES: Record<string, Role> = {
  system: "system",
  human: "user",
  user: "user",
  gpt: "assistant",
  assistant: "assistant",
};

/** A problem in one row (parseDataset and the streaming reader add the file and the line / row index). */
export class RowError extends Error {}

/** A row format other than a plain-text document: what JSON rows are detected as. */
export type JsonRowFormat = Exclude<RowFormat, "plaintext">;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function detectFormat(row: Record<string, unknown>): Exclude<RowFormat, "plaintext"> | undefined {
  if ("messages" in row) return "chat";
  if ("conversations" in row) return "sharegpt";
  if ("instruction" in row || "output" in row) return "alpaca";
  if ("prompt" in row || "completion" in row) return "prompt-completion";
  if ("text" in row) return "text";
  return undefined;
}

function str(row: Record<string, unknown>, key: string, optional = false): string {
  const v = row[key];
  if (v === undefined || v === null) {
    if (optional) return "";
    throw new RowError(`missing field "${key}"`);
  }
  if (typeof v !== "string") throw new RowError(`field "${key}" must be a string, got ${typeName(v)}`);
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

function parseMessages(
  row: Record<string, unknown>,
  key: "messages" | "conversations",
  roleKey: "role" | "from",
  contentKey: "content" | "value",
  roles: Record<string, Role>,
): ChatMessage[] {
  const list = row[key];
  if (!Array.isArray(list)) throw new RowError(`field "${key}" must be an array, got ${typeName(list)}`);
  if (list.length === 0) throw new RowError(`field "${key}" is empty`);
  return list.map((m, i) => {
    if (!isObject(m)) throw new RowError(`${key}[${i}] must be an object, got ${typeName(m)}`);
    const r = m[roleKey];
    if (typeof r !== "string") {
      throw new RowError(`${key}[${i}].${roleKey} must be a string, got ${typeName(r)}`);
    }
    const role = Object.hasOwn(roles, r) ? roles[r] : undefined;
    if (role === undefined) {
      throw new RowError(
        `${key}[${i}].${roleKey} is ${JSON.stringify(r)}; expected one of ${Object.keys(roles).join(", ")}`,
      );
    }
    const c = m[contentKey];
    if (typeof c !== "string") {
      throw new RowError(`${key}[${i}].${contentKey} must be a string, got ${typeName(c)}`);
    }
    return { role, content: c };
  });
}

/**
 * One parsed JSON value → a row. `expected`: the format of the file's first row (undefined for the
 * first row itself), which every later row must have. Problems are RowErrors (no file, no line).
 */
export function parseRow(
  value: unknown,
  expected: Exclude<RowFormat, "plaintext"> | undefined,
): {
  format: Exclude<RowFormat, "plaintext">;
  row: DataRow;
} {
  if (!isObject(value)) throw new RowError(`expected a JSON object, got ${typeName(value)}`);
  const format = detectFormat(value);
  if (format === undefined) {
    const keys = Object.keys(value);
    throw new RowError(
      `unrecognised row (keys: ${keys.length ? keys.join(", ") : "none"}); expected one of ${Object.values(
        FORMAT_NAMES,
      ).join(", ")}`,
    );
  }
  if (expected !== undefined && format !== expected) {
    throw new RowError(
      `row is ${FORMAT_NAMES[format]} but the file's first row is ${FORMAT_NAMES[expected]}`,
    );
  }
  switch (format) {
    case "text":
      return { format, row: { kind: "text", text: str(value, "text") } };
    case "prompt-completion":
      return {
        format,
        row: {
          kind: "prompt-completion",
          prompt: str(value, "prompt"),
          completion: str(value, "completion"),
        },
      };
    case "alpaca":
      return {
        format,
        row: {
          kind: "alpaca",
          instruction: str(value, "instruction"),
          input: str(value, "input", true),
          output: str(value, "output"),
        },
      };
    case "chat": {
      const roles: Record<string, Role> = { system: "system", user: "user", assistant: "assistant" };
      return {
        format,
        row: { kind: "chat", messages: parseMessages(value, "messages", "role", "content", roles) },
      };
    }
    case "sharegpt":
      return {
        format,
        row: {
          kind: "chat",
          messages: parseMessages(value, "conversations", "from", "value", SHAREGPT_ROLES),
        },
      };
  }
}

/** "line 3 column 5" for a character position in `text`. */
function lineColumn(text: string, pos: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return `line ${line} column ${pos - lineStart + 1}`;
}

export function oneLine(msg: string): string {
  // \r too: V8's JSON errors quote the start of the text raw, and a lone \r would rewrite the line.
  return msg.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

/**
 * parseRow after renaming the record's columns (columns.ts, --columns); a missing mapped column is a
 * RowError like any other problem of the row.
 */
export function parseRecord(
  value: unknown,
  expected: JsonRowFormat | undefined,
  columns?: ColumnMap,
): { format: JsonRowFormat; row: DataRow } {
  if (columns !== undefined && isObject(value)) {
    try {
      value = applyColumnMap(value, columns);
    } catch (e) {
      throw new RowError((e as Error).message);
    }
  }
  return parseRow(value, expected);
}

/**
 * Parses the contents of a dataset file. `path` names the file in errors and picks the container by
 * its extension (see the module comment).
 */
export function parseDataset(text: string, path: string, options: { columns?: ColumnMap } = {}): DataFile {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const container = containerOf(path, text.trimStart()[0]);
  if (container === "document") {
    if (text.trim() === "") throw new FileFormatError(path, "the text file is empty");
    return { path, format: "plaintext", rows: [{ kind: "document", text }] };
  }

  const rows: DataRow[] = [];
  let format: Exclude<RowFormat, "plaintext"> | undefined;
  if (container === "array") {
    let values: unknown;
    try {
      values = JSON.parse(text);
    } catch (e) {
      const msg = oneLine((e as Error).message);
      const m = /at position (\d+)/.exec(msg);
      const where = m ? ` at ${lineColumn(text, Number(m[1]))}` : "";
      throw new FileFormatError(path, `invalid JSON${where} (${msg})`);
    }
    if (!Array.isArray(values))
      throw new FileFormatError(path, `expected a JSON array, got ${typeName(values)}`);
    for (let i = 0; i < values.length; i++) {
      try {
        const r = parseRecord(values[i], format, options.columns);
        format = r.format;
        rows.push(r.row);
      } catch (e) {
        if (e instanceof RowError) throw new FileFormatError(path, `row index ${i}: ${e.message}`);
        throw e;
      }
    }
  } else {
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === "") continue;
      try {
        const r = parseRecord(parseJsonLine(line), format, options.columns);
        format = r.format;
        rows.push(r.row);
      } catch (e) {
        if (e instanceof RowError) throw new FileFormatError(path, `line ${i + 1}: ${e.message}`);
        throw e;
      }
    }
  }
  if (format === undefined || rows.length === 0) throw new FileFormatError(path, "the file has no rows");
  return { path, format, rows };
}

/** One JSONL line (trimmed, not blank) → its JSON value; invalid JSON is a RowError. */
export function parseJsonLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch (e) {
    throw new RowError(`invalid JSON (${oneLine((e as Error).message)})`);
  }
}

/**
 * How a file's rows are held, from its extension and its first non-blank character (undefined for an
 * empty file): "document" (.txt), "array" (a JSON array) or "jsonl"; errors as parseDataset's.
 */
export function containerOf(path: string, first: string | undefined): "document" | "array" | "jsonl" {
  const ext = extensionOf(path);
  if (ext === ".txt") return "document";
  if (ext === ".jsonl") return "jsonl";
  if (first === "[") return "array";
  if (first === "{") return "jsonl";
  if (first === undefined) throw new FileFormatError(path, "the file is empty");
  if (ext === ".json") throw new FileFormatError(path, "expected a JSON array of objects or JSON lines");
  throw new FileFormatError(
    path,
    `unknown dataset file type "${ext}" (use .txt for plain text, .jsonl or .json for rows)`,
  );
}

/** The file name's extension, lower-cased, with its dot ("" when none), as node:path's extname. */
export function extensionOf(path: string): string {
  const name = path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

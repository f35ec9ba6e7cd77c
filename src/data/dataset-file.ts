/** A dataset file read from disk (formats.ts parses its text, on any platform). */
import { readFileSync } from "node:fs";
import { FileFormatError } from "../util/errors.js";
import type { ColumnMap } from "./columns.js";
import { type DataFile, parseDataset } from "./formats.js";

/** Reads and parses a dataset file (see parseDataset). A missing file is a one-line error. */
export function readDataset(path: string, options: { columns?: ColumnMap } = {}): DataFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new FileFormatError(path, "no such file");
    if (code === "EISDIR") throw new FileFormatError(path, "is a directory, not a dataset file");
    throw new FileFormatError(path, `cannot read (${(e as Error).message.replace(/\s*[\r\n]+\s*/g, " ")})`);
  }
  return parseDataset(text, path, options);
}

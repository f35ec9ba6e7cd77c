import { openSync, readFileSync } from "node:fs";
import { FileFormatError } from "./errors.js";

/** Opens a file for reading; failure is a one-line FileFormatError naming the file (`what`: its kind). */
export function openForRead(path: string, what = "file"): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new FileFormatError(path, `cannot open ${what}: ${(e as Error).message.split("\n")[0]}`);
  }
}

/** A JSON file's contents; a missing file or bad JSON is a one-line error naming the file. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new FileFormatError(path, `cannot read: ${(e as Error).message.split("\n")[0]}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(path, `not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
}

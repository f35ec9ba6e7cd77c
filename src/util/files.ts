import { openSync } from "node:fs";
import { FileFormatError } from "./errors.js";

/** Opens a file for reading; failure is a one-line FileFormatError naming the file (`what`: its kind). */
export function openForRead(path: string, what = "file"): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new FileFormatError(path, `cannot open ${what}: ${(e as Error).message.split("\n")[0]}`);
  }
}

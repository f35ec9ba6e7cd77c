/** A tokenizer read from a model folder's files (tokenizer.ts is the tokenizer itself, on any platform). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FileFormatError } from "../util/errors.js";
import { Tokenizer } from "./tokenizer.js";

/** From a directory holding tokenizer.json and (optionally) tokenizer_config.json. */
export function readTokenizer(dir: string): Tokenizer {
  const read = (name: string, required: boolean): string | null => {
    const p = join(dir, name);
    try {
      return readFileSync(p, "utf8");
    } catch (e) {
      if (!required && (e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new FileFormatError(p, `cannot read: ${(e as Error).message.split("\n")[0]}`);
    }
  };
  const json = read("tokenizer.json", true)!;
  const config = read("tokenizer_config.json", false);
  return Tokenizer.fromTexts(json, config, join(dir, "tokenizer.json"), join(dir, "tokenizer_config.json"));
}

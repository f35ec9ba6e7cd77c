/**
 * stories260K (../shared/models/stories260K, llama2.c's real Llama-2-architecture model) converted
 * to a Hugging Face folder in a fresh temporary folder, as the reference tests use it. Callers skip
 * with `needsShared("models/stories260K/stories260K.bin", "models/stories260K/tok512.bin")`.
 */
import { join } from "node:path";
import { convertLlama2c } from "../../src/models/convert-llama2c.js";
import { tempDir } from "../models/fixtures.js";
import { sharedPath } from "./shared.js";

export async function stories260K(): Promise<string> {
  const dir = join(tempDir(), "stories260K");
  await convertLlama2c({
    model: sharedPath("models/stories260K/stories260K.bin"),
    tokenizer: sharedPath("models/stories260K/tok512.bin"),
    out: dir,
  });
  return dir;
}

/**
 * Opens a Hugging Face model folder as a model: io/hf-model.ts reads the files, assemble-model.ts
 * parses and checks them.
 */
import { join } from "node:path";
import { openWeights, readJsonObject, readOptionalJsonObject } from "../io/hf-model.js";
import { assembleModel, type HfModel } from "./assemble-model.js";
import { type ForwardOptions, type ForwardRunner, forwardRunner } from "./index.js";

export type { HfModel } from "./assemble-model.js";

/** Opens and validates a Hugging Face model folder (see assemble-model.ts). */
export function openModelDir(dir: string): HfModel {
  const configPath = join(dir, "config.json");
  return assembleModel({
    dir,
    config: readJsonObject(configPath),
    configPath,
    generationConfig: readOptionalJsonObject(join(dir, "generation_config.json")),
    tokenizerConfig: readOptionalJsonObject(join(dir, "tokenizer_config.json")),
    openWeights: (opts) => openWeights(dir, opts),
  });
}

/** A logits session over the model folder `dir`. */
export async function loadForward(dir: string, opts: ForwardOptions = {}): Promise<ForwardRunner> {
  return forwardRunner(openModelDir(dir), opts);
}

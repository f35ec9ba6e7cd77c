/**
 * Opens a Hugging Face model folder as a model: io/hf-model.ts reads the files, the family record
 * (family.ts) parses config.json, names the tensors and says which are tied, and every tensor the
 * graph will read is checked here (present, float, right shape) when the folder is opened, so a
 * wrong checkpoint fails at once with one line naming the tensor and the file.
 */
import { join } from "node:path";
import { isFloat } from "../graph/dtype.js";
import { fmtShape } from "../graph/shape.js";
import { openWeights, readJsonObject, readOptionalJsonObject, type WeightStore } from "../io/hf-model.js";
import { FileFormatError } from "../util/errors.js";
import type { ModelConfig } from "./config.js";
import { expectedTensors, familyOf, parseModelConfig, tiedWeights } from "./family.js";

export interface HfModel {
  dir: string;
  config: ModelConfig;
  /** Tensors under canonical names (family.ts canonicalNames); a tied head aliases the embedding. */
  weights: WeightStore;
  /** generation_config.json as parsed JSON, or null when absent. */
  generationConfig: Record<string, unknown> | null;
  /** tokenizer_config.json as parsed JSON (chat_template, special tokens...), or null when absent. */
  tokenizerConfig: Record<string, unknown> | null;
}

/** Opens and validates a Hugging Face model folder (see the file comment). */
export function openModelDir(dir: string): HfModel {
  const configPath = join(dir, "config.json");
  const config = parseModelConfig(readJsonObject(configPath), configPath);
  const generationConfig = readOptionalJsonObject(join(dir, "generation_config.json"));
  const tokenizerConfig = readOptionalJsonObject(join(dir, "tokenizer_config.json"));
  // A tied head reads the embedding table; HF ties even when a copy of lm_head is stored.
  const aliases = tiedWeights(config);
  const { store, where, describe } = openWeights(dir, {
    rename: familyOf(config).canonicalNames,
    aliases,
  });
  try {
    // Every layer has tensors of its own: a corrupt layer count must not size the map of expected
    // tensors (2^31 layers would build billions of entries before the first one is found missing).
    const stored = store.names().length;
    if (config.layers > stored) {
      throw new FileFormatError(
        configPath,
        `declares ${config.layers} layers, but the checkpoint holds only ${stored} tensors`,
      );
    }
    for (const [name, shape] of expectedTensors(config)) {
      if (!store.has(name)) {
        const file = where(aliases.get(name) ?? name);
        throw new FileFormatError(file, `missing tensor "${name}" (expected shape ${fmtShape(shape)})`);
      }
      const info = store.info(name);
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw new FileFormatError(
          describe(info.file),
          `tensor "${name}" has shape ${fmtShape(info.shape)}, expected ${fmtShape(shape)}`,
        );
      }
      if (!isFloat(info.dtype))
        throw new FileFormatError(
          describe(info.file),
          `tensor "${name}" has dtype ${info.dtype}, not a float type`,
        );
    }
  } catch (e) {
    store.close();
    throw e;
  }
  return { dir, config, weights: store, generationConfig, tokenizerConfig };
}

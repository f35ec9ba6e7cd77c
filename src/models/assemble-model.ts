/**
 * A model: its parsed config.json, JSON side files and weight store, with every tensor the graph will
 * read checked (present, float, right shape) when it is assembled, so a wrong checkpoint fails at once
 * with one line naming the tensor and the file. The family record (family.ts) parses config.json,
 * names the tensors and says which are tied. Platform-neutral: open-model.ts opens a folder in Node,
 * web/ assembles a model from files held in memory.
 */
import { isFloat } from "../graph/dtype.js";
import { fmtShape } from "../graph/shape.js";
import type { OpenedWeights, OpenWeightsOptions, WeightStore } from "../io/weight-store.js";
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

/** The parts of a model folder, read by the platform (see assembleModel). */
export interface ModelParts {
  /** The folder (Node) or a label for the picked files (browser). */
  dir: string;
  /** config.json parsed, and its path for messages. */
  config: Record<string, unknown>;
  configPath: string;
  generationConfig: Record<string, unknown> | null;
  tokenizerConfig: Record<string, unknown> | null;
  /** Opens the weights with the family's renaming and tied aliases. */
  openWeights(opts: OpenWeightsOptions): OpenedWeights;
}

/** Parses and validates a model from its parts (see the file comment); the store is closed on failure. */
export function assembleModel(parts: ModelParts): HfModel {
  const { dir, configPath, generationConfig, tokenizerConfig } = parts;
  const config = parseModelConfig(parts.config, configPath);
  // A tied head reads the embedding table; HF ties even when a copy of lm_head is stored.
  const aliases = tiedWeights(config);
  const { store, where, describe } = parts.openWeights({
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

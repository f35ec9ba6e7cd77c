/**
 * A model family is everything that differs between a Llama-style and a GPT-2-style checkpoint,
 * held in one record per family (llama.ts, gpt2.ts):
 * - how config.json is read;
 * - which tensors exist, with their names and shapes;
 * - how the forward graph is built;
 * - the embedding and head modules, and which weights a tied head shares;
 * - how hub checkpoints spell the names;
 * - the GGUF side: the architecture name, HF ↔ GGUF tensor names, and which q/k rows GGUF keeps
 *   in interleaved-pair rotary order.
 *
 * Code outside models/ asks the record (`familyOf(cfg)` or the helpers below) and never switches
 * on `cfg.family` itself, so a new family is one new file plus one line in FAMILIES.
 */

import { LoraTsError } from "../util/errors.js";
import type { ConfigJson, FamilyName, ModelConfig, ModelType } from "./config.js";
import { SUPPORTED_MODEL_TYPES } from "./config.js";
import { gpt2Family } from "./gpt2.js";
import { llamaFamily } from "./llama.js";
import type { ModuleContext } from "./module.js";
import type { BuildOptions, ForwardInputs, ForwardOutputs } from "./transformer.js";

/** How a family's tensors are named and laid out in a llama.cpp GGUF file. */
export interface GgufLayout {
  /** general.architecture, also the prefix of the family's metadata keys ("llama.block_count"). */
  architecture: string;
  /** HF name -> GGUF name, for the tensors outside the blocks. */
  globals: Readonly<Record<string, string>>;
  /** The HF prefix of block N is `${blockPrefix}N.`; GGUF's is "blk.N.". */
  blockPrefix: string;
  /** HF name inside a block -> GGUF name inside the block. */
  block: Readonly<Record<string, string>>;
  /**
   * For a q/k projection that GGUF stores with its rows in interleaved-pair rotary order (Meta's and
   * llama.cpp's layout, not HF's rotate_half one), the number of heads to permute over
   * (io/rope-rows.ts permuteRopeRows); null for a tensor stored as HF stores it.
   */
  ropeRowHeads(hfName: string, cfg: ModelConfig): number | null;
  /** Whether GGUF stores the matrix transposed relative to the HF checkpoint (GPT-2's Conv1D). */
  transposed(hfName: string): boolean;
}

export interface ModelFamily {
  /** `ModelConfig.family`. */
  name: FamilyName;
  /** model_type -> the HF architecture class named in config.json "architectures". */
  architectures: Readonly<Partial<Record<ModelType, string>>>;
  /** Reads config.json (`modelType` already detected); `file` names it in errors. */
  parseConfig(json: ConfigJson, file: string, modelType: ModelType): ModelConfig;
  /** Every tensor the graph reads, under canonical names, with its shape (lm_head included). */
  tensorShapes(cfg: ModelConfig): Map<string, number[]>;
  /** Builds the forward pass into ctx.graph. */
  build(ctx: ModuleContext, cfg: ModelConfig, inputs: ForwardInputs, opts?: BuildOptions): ForwardOutputs;
  /** Module path of the token embedding ("model.embed_tokens"); its table is `<path>.weight`. */
  embeddingPath: string;
  /**
   * Whether max_position_embeddings is a hard limit: learned position tables (GPT-2's wpe) have no row
   * past it, while rotary positions run on (with quality falling off), as Hugging Face and llama.cpp
   * allow with a warning.
   */
  hardContext: boolean;
  /** Module path of the output head ("lm_head"); a tied head reads the embedding table instead. */
  headPath: string;
  /**
   * Stored name -> canonical name (the HF module paths of the *ForCausalLM model), given every
   * stored name: hub checkpoints saved from the bare model lack the wrapper's prefix.
   */
  canonicalNames(stored: readonly string[]): (name: string) => string;
  gguf: GgufLayout;
}

/** Every family, in the order errors list them. */
export const FAMILIES: readonly ModelFamily[] = [llamaFamily, gpt2Family];

/** The record of a config's family (or of a family name). */
export function familyOf(cfg: Pick<ModelConfig, "family"> | FamilyName): ModelFamily {
  const name = typeof cfg === "string" ? cfg : cfg.family;
  const f = FAMILIES.find((x) => x.name === name);
  if (!f) throw new LoraTsError(`unknown model family "${name}"`);
  return f;
}

/** Parses a config.json object; `file` names it in error messages. */
export function parseModelConfig(json: unknown, file: string): ModelConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json))
    throw new LoraTsError(`${file}: expected a JSON object`);
  const j = json as ConfigJson;
  const modelType = detectModelType(j, file);
  const family = FAMILIES.find((f) => f.architectures[modelType] !== undefined)!;
  return family.parseConfig(j, file, modelType);
}

function detectModelType(j: ConfigJson, file: string): ModelType {
  let t = j["model_type"];
  if (typeof t !== "string") {
    const arch = Array.isArray(j["architectures"]) ? j["architectures"][0] : undefined;
    t = typeof arch === "string" ? (modelTypeOfArchitecture(arch) ?? arch) : undefined;
  }
  if (typeof t === "string" && (SUPPORTED_MODEL_TYPES as readonly string[]).includes(t))
    return t as ModelType;
  const shown = typeof t === "string" ? t : "(none)";
  throw new LoraTsError(
    `${file}: unsupported model_type "${shown}"; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`,
  );
}

function modelTypeOfArchitecture(arch: string): ModelType | undefined {
  for (const f of FAMILIES) {
    for (const [type, cls] of Object.entries(f.architectures)) if (cls === arch) return type as ModelType;
  }
  return undefined;
}

/** The HF architecture class of a config, e.g. "Qwen2ForCausalLM". */
export function hfArchitecture(cfg: Pick<ModelConfig, "family" | "modelType">): string {
  return familyOf(cfg).architectures[cfg.modelType]!;
}

/** Tensor name -> expected shape, for every tensor the model's graph reads. */
export function expectedTensors(cfg: ModelConfig): Map<string, number[]> {
  return familyOf(cfg).tensorShapes(cfg);
}

/** The token embedding table's tensor name, e.g. "model.embed_tokens.weight". */
export function embeddingWeightName(cfg: Pick<ModelConfig, "family">): string {
  return `${familyOf(cfg).embeddingPath}.weight`;
}

/** Shared weights: alias -> the tensor it reads (a tied head's weight -> the embedding table). */
export function tiedWeights(cfg: ModelConfig): Map<string, string> {
  const f = familyOf(cfg);
  return new Map(cfg.tieWordEmbeddings ? [[`${f.headPath}.weight`, `${f.embeddingPath}.weight`]] : []);
}

/** The family whose GGUF general.architecture is `arch`, if any. */
export function familyOfGgufArchitecture(arch: string): ModelFamily | undefined {
  return FAMILIES.find((f) => f.gguf.architecture === arch);
}

/** The GGUF name of an HF tensor of `family`, or null when GGUF has none for it. */
export function ggufTensorName(family: ModelFamily, hfName: string): string | null {
  const { globals, blockPrefix, block } = family.gguf;
  const g = globals[hfName];
  if (g !== undefined) return g;
  if (!hfName.startsWith(blockPrefix)) return null;
  const m = /^(\d+)\.(.+)$/.exec(hfName.slice(blockPrefix.length));
  const inner = m ? block[m[2]!] : undefined;
  return inner === undefined ? null : `blk.${m![1]}.${inner}`;
}

/** The HF name of a GGUF tensor of `family`, or null when it is not one of the known ones. */
export function hfTensorName(family: ModelFamily, ggufName: string): string | null {
  const { globals, blockPrefix, block } = family.gguf;
  for (const [hf, gguf] of Object.entries(globals)) if (gguf === ggufName) return hf;
  const m = /^blk\.(\d+)\.(.+)$/.exec(ggufName);
  if (!m) return null;
  for (const [hf, gguf] of Object.entries(block)) if (gguf === m[2]) return `${blockPrefix}${m[1]}.${hf}`;
  return null;
}

/**
 * The model hyper-parameters the engine needs, read from a Hugging Face config.json. One
 * `ModelConfig` covers both families: "llama" (Llama 2/3, Mistral, Qwen2, SmolLM — same block, a
 * few switches) and "gpt2". Field names follow the engine, the HF spelling is in each comment.
 * Each family parses its own config.json (llama.ts, gpt2.ts) with the field readers here;
 * `parseModelConfig` (family.ts) picks the family.
 */
import { LoraTsError } from "../util/errors.js";

/** The family a config belongs to; its record (models/family.ts) holds everything family-specific. */
export type FamilyName = "llama" | "gpt2";

/** model_type values accepted, in the order the error message lists them. */
export const SUPPORTED_MODEL_TYPES = ["llama", "mistral", "qwen2", "gpt2"] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

/** HF `rope_scaling`. "linear" divides positions by `factor`; "llama3" rescales frequency bands. */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export type Activation = "silu" | "gelu" | "gelu_tanh" | "relu";

export interface ModelConfig {
  family: FamilyName;
  modelType: ModelType;
  vocabSize: number;
  /** hidden_size / n_embd */
  hidden: number;
  /** num_hidden_layers / n_layer */
  layers: number;
  /** num_attention_heads / n_head */
  heads: number;
  /** num_key_value_heads (GQA); equals `heads` for multi-head attention. */
  kvHeads: number;
  /** head_dim, or hidden / heads */
  headDim: number;
  /** intermediate_size / n_inner (GPT-2 default 4·hidden) */
  intermediate: number;
  /** rms_norm_eps / layer_norm_epsilon */
  normEps: number;
  activation: Activation;
  /** rope_theta (llama family only; 0 for GPT-2). */
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /** max_position_embeddings / n_positions */
  maxPositions: number;
  /** GPT-2 is always tied; Llama-family defaults to false. */
  tieWordEmbeddings: boolean;
  /** Biases on q/k/v projections (Qwen2 always; Llama when attention_bias). */
  qkvBias: boolean;
  /** Bias on the attention output projection (Llama attention_bias; GPT-2 always). */
  oBias: boolean;
  /** Biases in the MLP (Llama mlp_bias; GPT-2 always). */
  mlpBias: boolean;
  /** GPT-2 scale_attn_by_inverse_layer_idx: scores also divided by (layer + 1). */
  scaleAttnByInverseLayerIdx: boolean;
  /**
   * Mistral/Qwen2 sliding window, recorded but not applied: the graph attends to every earlier
   * token, which equals HF only while past + seq <= slidingWindow (4096 for Mistral 7B v0.1).
   */
  slidingWindow: number | null;
  /** torch_dtype (or "dtype" in newer configs), e.g. "bfloat16"; null when absent. */
  torchDtype: string | null;
  bosTokenId: number | null;
  /** eos_token_id, always as a list (Llama 3 configs give several). */
  eosTokenIds: number[];
}

export type ConfigJson = Record<string, unknown>;

/** hidden_act / activation_function -> the engine's activation. */
export function parseActivation(name: string, file: string): Activation {
  switch (name) {
    case "silu":
    case "swish":
      return "silu";
    case "gelu":
      return "gelu";
    case "gelu_new":
    case "gelu_pytorch_tanh":
      return "gelu_tanh";
    case "relu":
      return "relu";
    default:
      throw new LoraTsError(
        `${file}: unsupported activation ${JSON.stringify(name)}; supported: silu, gelu, gelu_new, relu`,
      );
  }
}

/** HF `rope_scaling` (either spelling of its type key), or null for none/default. */
export function parseRopeScaling(v: unknown, file: string): RopeScaling | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== "object" || Array.isArray(v))
    throw new LoraTsError(`${file}: rope_scaling must be an object`);
  const f = configFields(v as ConfigJson, `${file}: rope_scaling`);
  // HF renamed "type" to "rope_type"; both occur in published configs.
  const type = f.str("rope_type", f.str("type", "default"));
  switch (type) {
    case "default":
      return null;
    case "linear":
      return { type: "linear", factor: f.num("factor") };
    case "llama3":
      return {
        type: "llama3",
        factor: f.num("factor"),
        lowFreqFactor: f.num("low_freq_factor"),
        highFreqFactor: f.num("high_freq_factor"),
        originalMaxPositionEmbeddings: f.int("original_max_position_embeddings"),
      };
    default:
      throw new LoraTsError(
        `${file}: unsupported rope_scaling type ${JSON.stringify(type)}; supported: default, linear, llama3`,
      );
  }
}

/**
 * Rotary inverse frequencies, one per pair of head dims: θ^(-2i/d), then HF's rope scaling
 * ("linear": ÷ factor; "llama3": long wavelengths ÷ factor, short ones kept, the band between
 * interpolated smoothly). Computed in float64; the graph rounds them to float32.
 */
export function ropeInverseFrequencies(
  cfg: Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">,
): number[] {
  const d = cfg.headDim;
  const inv = Array.from({ length: d / 2 }, (_, i) => 1 / cfg.ropeTheta ** ((2 * i) / d));
  const s = cfg.ropeScaling;
  if (s === null) return inv;
  if (s.type === "linear") return inv.map((f) => f / s.factor);
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f; // high frequency: unchanged
    if (wavelen > lowFreqWavelen) return f / s.factor; // low frequency: interpolated
    const smooth =
      (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** torch_dtype, or "dtype" in newer configs. */
export function torchDtype(j: ConfigJson): string | null {
  const v = j["torch_dtype"] ?? j["dtype"];
  return typeof v === "string" ? v : null;
}

/** A token id or list of ids (eos_token_id), always as a list. */
export function tokenIds(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

/** Typed field readers that name the file and key in their one-line errors. */
export function configFields(j: ConfigJson, file: string) {
  const bad = (key: string, want: string): never => {
    throw new LoraTsError(`${file}: "${key}" must be ${want} (got ${JSON.stringify(j[key]) ?? "nothing"})`);
  };
  const present = (key: string) => j[key] !== undefined && j[key] !== null;
  const num = (key: string, dflt?: number): number => {
    if (!present(key)) return dflt ?? bad(key, "a number");
    const v = j[key];
    return typeof v === "number" && Number.isFinite(v) ? v : bad(key, "a number");
  };
  const int = (key: string, dflt?: number): number => {
    const v = num(key, dflt);
    return Number.isInteger(v) && v > 0 ? v : bad(key, "a positive integer");
  };
  return {
    num,
    int,
    optInt: (key: string): number | null => {
      if (!present(key)) return null;
      const v = j[key];
      return typeof v === "number" && Number.isInteger(v) ? v : bad(key, "an integer");
    },
    bool: (key: string, dflt: boolean): boolean => {
      if (!present(key)) return dflt;
      return typeof j[key] === "boolean" ? (j[key] as boolean) : bad(key, "true or false");
    },
    str: (key: string, dflt: string): string => {
      if (!present(key)) return dflt;
      return typeof j[key] === "string" ? (j[key] as string) : bad(key, "a string");
    },
  };
}

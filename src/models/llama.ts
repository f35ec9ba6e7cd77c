/**
 * The Llama block, which also covers Mistral, Qwen2 and SmolLM (HF LlamaForCausalLM semantics):
 *
 *   h = x + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = rmsnorm(x)
 *   x' = h + down_proj(silu(gate_proj(m)) · up_proj(m))                      m = rmsnorm(h)
 *
 * with grouped-query attention (kvHeads ≤ heads), optional q/k/v (Qwen2) or all-projection biases,
 * and a head tied to the embedding table or separate (lm_head). `llamaFamily` is the family record
 * (family.ts): config.json, tensors, graph, GGUF names.
 */
import type { Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import { GraphBuildError, LoraTsError } from "../util/errors.js";
import {
  type ConfigJson,
  configFields,
  type ModelConfig,
  type ModelType,
  parseActivation,
  parseRopeScaling,
  tokenIds,
  torchDtype,
} from "./config.js";
import type { ModelFamily } from "./family.js";
import type { ModuleContext } from "./module.js";
import {
  attention,
  attentionBias,
  type BuildOptions,
  decoderLayer,
  type ForwardInputs,
  type ForwardOutputs,
  type KeyValue,
  outputHead,
  positionIds,
  ropeTables,
  splitHeads,
  withPast,
} from "./transformer.js";

export function buildLlama(
  ctx: ModuleContext,
  cfg: ModelConfig,
  inputs: ForwardInputs,
  opts: BuildOptions = {},
): ForwardOutputs {
  const groups = cfg.heads / cfg.kvHeads;
  if (!Number.isInteger(groups)) {
    throw new GraphBuildError(
      `num_attention_heads ${cfg.heads} is not a multiple of num_key_value_heads ${cfg.kvHeads}`,
    );
  }
  const rope = ropeTables(cfg, positionIds(inputs));
  const bias = attentionBias(inputs, groups); // shared by all layers
  let x = ctx.embedding(inputs.ids, "model.embed_tokens");
  const present: KeyValue[] = [];
  for (let i = 0; i < cfg.layers; i++) {
    const p = `model.layers.${i}`;
    x = decoderLayer(opts, inputs, i, x, (x) => {
      const n = o.rmsNorm(x, ctx.param(`${p}.input_layernorm.weight`), cfg.normEps);
      const kv = selfAttention(ctx, cfg, p, n, rope, bias, inputs.past?.[i], opts.queryBlocks);
      present.push(kv.present);
      const h = o.add(x, kv.out);
      const m = o.rmsNorm(h, ctx.param(`${p}.post_attention_layernorm.weight`), cfg.normEps);
      return o.add(h, mlp(ctx, cfg, `${p}.mlp`, m));
    });
  }
  const hidden = o.rmsNorm(x, ctx.param("model.norm.weight"), cfg.normEps);
  return { logits: outputHead(ctx, cfg, hidden), hidden, present: inputs.past ? present : null };
}

function selfAttention(
  ctx: ModuleContext,
  cfg: ModelConfig,
  prefix: string,
  x: Value,
  rope: { cos: Value; sin: Value },
  bias: Value,
  past: KeyValue | undefined,
  queryBlocks?: number,
): { out: Value; present: KeyValue } {
  const p = `${prefix}.self_attn`;
  const { hidden, heads, kvHeads, headDim } = cfg;
  const proj = (name: string, out: number) =>
    ctx.linear(x, { path: `${p}.${name}`, inFeatures: hidden, outFeatures: out, bias: cfg.qkvBias });
  const q = splitHeads(proj("q_proj", heads * headDim), kvHeads, heads / kvHeads, headDim, rope);
  const k = splitHeads(proj("k_proj", kvHeads * headDim), kvHeads, 0, headDim, rope);
  const v = splitHeads(proj("v_proj", kvHeads * headDim), kvHeads, 0, headDim);
  const kv = withPast(past, k, v);
  const a = attention(q, kv, bias, 1 / Math.sqrt(headDim), queryBlocks);
  const out = ctx.linear(a, {
    path: `${p}.o_proj`,
    inFeatures: heads * headDim,
    outFeatures: hidden,
    bias: cfg.oBias,
  });
  return { out, present: kv };
}

function mlp(ctx: ModuleContext, cfg: ModelConfig, p: string, x: Value): Value {
  const spec = (name: string, i: number, out: number) => ({
    path: `${p}.${name}`,
    inFeatures: i,
    outFeatures: out,
    bias: cfg.mlpBias,
  });
  const gate = ctx.linear(x, spec("gate_proj", cfg.hidden, cfg.intermediate));
  const up = ctx.linear(x, spec("up_proj", cfg.hidden, cfg.intermediate));
  const h = cfg.activation === "silu" ? nn.swiGlu(gate, up) : o.mul(activate(gate, cfg), up);
  return ctx.linear(h, spec("down_proj", cfg.intermediate, cfg.hidden));
}

/** The MLP activation named by config (hidden_act / activation_function). */
export function activate(x: Value, cfg: ModelConfig): Value {
  switch (cfg.activation) {
    case "silu":
      return o.silu(x);
    case "gelu":
      return o.gelu(x);
    case "gelu_tanh":
      return o.geluTanh(x);
    case "relu":
      return o.where(o.greater(x, 0), x, 0);
  }
}

/** Every tensor buildLlama reads, with its shape ([out, in] for linear weights). */
export function llamaTensorShapes(cfg: ModelConfig): Map<string, number[]> {
  const { hidden, heads, kvHeads, headDim, intermediate } = cfg;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [cfg.vocabSize, hidden]);
  const linear = (path: string, i: number, out: number, bias: boolean) => {
    m.set(`${path}.weight`, [out, i]);
    if (bias) m.set(`${path}.bias`, [out]);
  };
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.layers.${l}`;
    m.set(`${p}.input_layernorm.weight`, [hidden]);
    linear(`${p}.self_attn.q_proj`, hidden, heads * headDim, cfg.qkvBias);
    linear(`${p}.self_attn.k_proj`, hidden, kvHeads * headDim, cfg.qkvBias);
    linear(`${p}.self_attn.v_proj`, hidden, kvHeads * headDim, cfg.qkvBias);
    linear(`${p}.self_attn.o_proj`, heads * headDim, hidden, cfg.oBias);
    m.set(`${p}.post_attention_layernorm.weight`, [hidden]);
    linear(`${p}.mlp.gate_proj`, hidden, intermediate, cfg.mlpBias);
    linear(`${p}.mlp.up_proj`, hidden, intermediate, cfg.mlpBias);
    linear(`${p}.mlp.down_proj`, intermediate, hidden, cfg.mlpBias);
  }
  m.set("model.norm.weight", [hidden]);
  m.set("lm_head.weight", [cfg.vocabSize, hidden]);
  return m;
}

/** Reads a Llama / Mistral / Qwen2 / SmolLM config.json. */
export function parseLlamaConfig(j: ConfigJson, file: string, modelType: ModelType): ModelConfig {
  const f = configFields(j, file);
  const hidden = f.int("hidden_size");
  const heads = f.int("num_attention_heads");
  const kvHeads = f.int("num_key_value_heads", heads);
  if (heads % kvHeads !== 0 || (!j["head_dim"] && hidden % heads !== 0)) {
    throw new LoraTsError(
      `${file}: num_attention_heads ${heads} must be a multiple of num_key_value_heads ${kvHeads} and divide hidden_size ${hidden}`,
    );
  }
  const headDim = f.int("head_dim", hidden / heads);
  const attentionBias = f.bool("attention_bias", false);
  // Qwen2's q/k/v always carry biases and o_proj never does (no config switch for it).
  const isQwen2 = modelType === "qwen2";
  const useSliding = modelType === "mistral" || f.bool("use_sliding_window", false);
  return {
    family: "llama",
    modelType,
    vocabSize: f.int("vocab_size"),
    hidden,
    layers: f.int("num_hidden_layers"),
    heads,
    kvHeads,
    headDim,
    intermediate: f.int("intermediate_size"),
    normEps: f.num("rms_norm_eps", 1e-6),
    activation: parseActivation(f.str("hidden_act", "silu"), file),
    ropeTheta: f.num("rope_theta", 10000),
    ropeScaling: parseRopeScaling(j["rope_scaling"], file),
    maxPositions: f.int("max_position_embeddings", 2048),
    tieWordEmbeddings: f.bool("tie_word_embeddings", false),
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    mlpBias: f.bool("mlp_bias", false),
    scaleAttnByInverseLayerIdx: false,
    slidingWindow: useSliding ? f.optInt("sliding_window") : null,
    torchDtype: torchDtype(j),
    bosTokenId: f.optInt("bos_token_id"),
    eosTokenIds: tokenIds(j["eos_token_id"]),
  };
}

export const llamaFamily: ModelFamily = {
  name: "llama",
  architectures: { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM" },
  parseConfig: parseLlamaConfig,
  tensorShapes: llamaTensorShapes,
  build: buildLlama,
  embeddingPath: "model.embed_tokens",
  hardContext: false,
  headPath: "lm_head",
  canonicalNames: () => (n) => n,
  gguf: {
    architecture: "llama",
    globals: {
      "model.embed_tokens.weight": "token_embd.weight",
      "model.norm.weight": "output_norm.weight",
      "lm_head.weight": "output.weight",
    },
    blockPrefix: "model.layers.",
    block: {
      "input_layernorm.weight": "attn_norm.weight",
      "self_attn.q_proj.weight": "attn_q.weight",
      "self_attn.k_proj.weight": "attn_k.weight",
      "self_attn.v_proj.weight": "attn_v.weight",
      "self_attn.o_proj.weight": "attn_output.weight",
      "post_attention_layernorm.weight": "ffn_norm.weight",
      "mlp.gate_proj.weight": "ffn_gate.weight",
      "mlp.up_proj.weight": "ffn_up.weight",
      "mlp.down_proj.weight": "ffn_down.weight",
    },
    // llama.cpp's converter (like Meta's checkpoints) keeps q/k rows in interleaved-pair order.
    ropeRowHeads: (name, cfg) =>
      name.endsWith(".self_attn.q_proj.weight")
        ? cfg.heads
        : name.endsWith(".self_attn.k_proj.weight")
          ? cfg.kvHeads
          : null,
    transposed: () => false,
  },
};

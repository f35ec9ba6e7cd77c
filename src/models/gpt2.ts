/**
 * GPT-2 (HF GPT2LMHeadModel semantics): learned positions, pre-LayerNorm blocks, Conv1D layers
 * (weights stored [in, out], hence fanInFanOut), one fused c_attn projection split into q, k, v,
 * GELU (tanh form, "gelu_new"), and a head tied to the token embedding table. `gpt2Family` is the
 * family record (family.ts): config.json, tensors, graph, hub and GGUF names.
 */
import type { Value } from "../graph/ir.js";
import * as o from "../graph/ops.js";
import { LoraTsError } from "../util/errors.js";
import {
  type ConfigJson,
  configFields,
  type ModelConfig,
  parseActivation,
  tokenIds,
  torchDtype,
} from "./config.js";
import type { ModelFamily } from "./family.js";
import { activate } from "./llama.js";
import type { LinearSpec, ModuleContext } from "./module.js";
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
  splitHeads,
  withPast,
} from "./transformer.js";

export function buildGpt2(
  ctx: ModuleContext,
  cfg: ModelConfig,
  inputs: ForwardInputs,
  opts: BuildOptions = {},
): ForwardOutputs {
  const bias = attentionBias(inputs, 1); // shared by all layers
  const tokens = ctx.embedding(inputs.ids, "transformer.wte");
  let x = o.add(tokens, ctx.embedding(positionIds(inputs), "transformer.wpe"));
  const present: KeyValue[] = [];
  for (let i = 0; i < cfg.layers; i++) {
    const p = `transformer.h.${i}`;
    x = decoderLayer(opts, inputs, i, x, (x) => {
      const n = layerNorm(ctx, cfg, `${p}.ln_1`, x);
      const a = selfAttention(ctx, cfg, i, n, bias, inputs.past?.[i], opts.queryBlocks);
      present.push(a.present);
      const h = o.add(x, a.out);
      return o.add(h, mlp(ctx, cfg, `${p}.mlp`, layerNorm(ctx, cfg, `${p}.ln_2`, h)));
    });
  }
  const hidden = layerNorm(ctx, cfg, "transformer.ln_f", x);
  return { logits: outputHead(ctx, cfg, hidden), hidden, present: inputs.past ? present : null };
}

function layerNorm(ctx: ModuleContext, cfg: ModelConfig, path: string, x: Value): Value {
  return o.layerNorm(x, ctx.param(`${path}.weight`), ctx.param(`${path}.bias`), cfg.normEps);
}

function conv1d(path: string, inFeatures: number, outFeatures: number): LinearSpec {
  return { path, inFeatures, outFeatures, bias: true, fanInFanOut: true };
}

function selfAttention(
  ctx: ModuleContext,
  cfg: ModelConfig,
  layer: number,
  x: Value,
  bias: Value,
  past: KeyValue | undefined,
  queryBlocks?: number,
): { out: Value; present: KeyValue } {
  const p = `transformer.h.${layer}.attn`;
  const { hidden, heads, headDim } = cfg;
  const qkv = ctx.linear(x, conv1d(`${p}.c_attn`, hidden, 3 * hidden));
  const [q, k, v] = o.split(qkv, -1, [hidden, hidden, hidden]) as [Value, Value, Value];
  const kv = withPast(past, splitHeads(k, heads, 0, headDim), splitHeads(v, heads, 0, headDim));
  let scale = 1 / Math.sqrt(headDim);
  if (cfg.scaleAttnByInverseLayerIdx) scale /= layer + 1;
  const a = attention(splitHeads(q, heads, 1, headDim), kv, bias, scale, queryBlocks);
  return { out: ctx.linear(a, conv1d(`${p}.c_proj`, hidden, hidden)), present: kv };
}

function mlp(ctx: ModuleContext, cfg: ModelConfig, p: string, x: Value): Value {
  const h = activate(ctx.linear(x, conv1d(`${p}.c_fc`, cfg.hidden, cfg.intermediate)), cfg);
  return ctx.linear(h, conv1d(`${p}.c_proj`, cfg.intermediate, cfg.hidden));
}

/** Every tensor buildGpt2 reads, with its shape (Conv1D weights are [in, out]). */
export function gpt2TensorShapes(cfg: ModelConfig): Map<string, number[]> {
  const { hidden, intermediate } = cfg;
  const m = new Map<string, number[]>();
  m.set("transformer.wte.weight", [cfg.vocabSize, hidden]);
  m.set("transformer.wpe.weight", [cfg.maxPositions, hidden]);
  const norm = (path: string) => {
    m.set(`${path}.weight`, [hidden]);
    m.set(`${path}.bias`, [hidden]);
  };
  const conv = (path: string, i: number, out: number) => {
    m.set(`${path}.weight`, [i, out]);
    m.set(`${path}.bias`, [out]);
  };
  for (let l = 0; l < cfg.layers; l++) {
    const p = `transformer.h.${l}`;
    norm(`${p}.ln_1`);
    conv(`${p}.attn.c_attn`, hidden, 3 * hidden);
    conv(`${p}.attn.c_proj`, hidden, hidden);
    norm(`${p}.ln_2`);
    conv(`${p}.mlp.c_fc`, hidden, intermediate);
    conv(`${p}.mlp.c_proj`, intermediate, hidden);
  }
  norm("transformer.ln_f");
  m.set("lm_head.weight", [cfg.vocabSize, hidden]);
  return m;
}

/** Reads a GPT-2 config.json. */
export function parseGpt2Config(j: ConfigJson, file: string): ModelConfig {
  const f = configFields(j, file);
  const hidden = f.int("n_embd");
  const heads = f.int("n_head");
  const headDim = hidden / heads;
  if (!Number.isInteger(headDim))
    throw new LoraTsError(`${file}: n_embd ${hidden} is not divisible by n_head ${heads}`);
  return {
    family: "gpt2",
    modelType: "gpt2",
    vocabSize: f.int("vocab_size"),
    hidden,
    layers: f.int("n_layer"),
    heads,
    kvHeads: heads,
    headDim,
    intermediate: f.int("n_inner", 4 * hidden),
    normEps: f.num("layer_norm_epsilon", 1e-5),
    activation: parseActivation(f.str("activation_function", "gelu_new"), file),
    ropeTheta: 0,
    ropeScaling: null,
    maxPositions: f.int("n_positions", 1024),
    tieWordEmbeddings: f.bool("tie_word_embeddings", true),
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    scaleAttnByInverseLayerIdx: f.bool("scale_attn_by_inverse_layer_idx", false),
    slidingWindow: null,
    torchDtype: torchDtype(j),
    bosTokenId: f.optInt("bos_token_id"),
    eosTokenIds: tokenIds(j["eos_token_id"]),
  };
}

const withBias = (hf: string, gguf: string) => ({
  [`${hf}.weight`]: `${gguf}.weight`,
  [`${hf}.bias`]: `${gguf}.bias`,
});

export const gpt2Family: ModelFamily = {
  name: "gpt2",
  architectures: { gpt2: "GPT2LMHeadModel" },
  parseConfig: (j, file) => parseGpt2Config(j, file),
  tensorShapes: gpt2TensorShapes,
  build: buildGpt2,
  embeddingPath: "transformer.wte",
  hardContext: true,
  headPath: "lm_head",
  // The hub's gpt2 checkpoint was saved from GPT2Model and lacks the "transformer." prefix.
  canonicalNames: (stored) =>
    stored.some((n) => n.startsWith("transformer."))
      ? (n) => n
      : (n) => (n.startsWith("lm_head.") ? n : `transformer.${n}`),
  gguf: {
    architecture: "gpt2",
    globals: {
      "transformer.wte.weight": "token_embd.weight",
      "transformer.wpe.weight": "position_embd.weight",
      ...withBias("transformer.ln_f", "output_norm"),
      "lm_head.weight": "output.weight",
    },
    blockPrefix: "transformer.h.",
    block: {
      ...withBias("ln_1", "attn_norm"),
      ...withBias("attn.c_attn", "attn_qkv"),
      ...withBias("attn.c_proj", "attn_output"),
      ...withBias("ln_2", "ffn_norm"),
      ...withBias("mlp.c_fc", "ffn_up"),
      ...withBias("mlp.c_proj", "ffn_down"),
    },
    ropeRowHeads: () => null,
    // llama.cpp's converter stores Conv1D [in, out] weights as linear [out, in] ones.
    transposed: (name) => /\.(c_attn|c_proj|c_fc)\.weight$/.test(name),
  },
};

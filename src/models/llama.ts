/**
 * The Llama block, which also covers Mistral, Qwen2 and SmolLM (HF LlamaForCausalLM semantics):
 *
 *   h = x + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = rmsnorm(x)
 *   x' = h + down_proj(silu(gate_proj(m)) · up_proj(m))                      m = rmsnorm(h)
 *
 * with grouped-query attention (kvHeads ≤ heads), optional q/k/v (Qwen2) or all-projection biases,
 * and a head tied to the embedding table or separate (lm_head).
 */
import type { Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import { GraphBuildError } from "../util/errors.js";
import type { ModelConfig } from "./config.js";
import type { ModuleContext } from "./module.js";
import {
  attention,
  attentionBias,
  type ForwardInputs,
  type ForwardOutputs,
  type KeyValue,
  outputHead,
  positionIds,
  ropeTables,
  splitHeads,
  withPast,
} from "./transformer.js";

export function buildLlama(ctx: ModuleContext, cfg: ModelConfig, inputs: ForwardInputs): ForwardOutputs {
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
    const n = o.rmsNorm(x, ctx.param(`${p}.input_layernorm.weight`), cfg.normEps);
    const kv = selfAttention(ctx, cfg, p, n, rope, bias, inputs.past?.[i]);
    present.push(kv.present);
    const h = o.add(x, kv.out);
    const m = o.rmsNorm(h, ctx.param(`${p}.post_attention_layernorm.weight`), cfg.normEps);
    x = o.add(h, mlp(ctx, cfg, `${p}.mlp`, m));
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
): { out: Value; present: KeyValue } {
  const p = `${prefix}.self_attn`;
  const { hidden, heads, kvHeads, headDim } = cfg;
  const proj = (name: string, out: number) =>
    ctx.linear(x, { path: `${p}.${name}`, inFeatures: hidden, outFeatures: out, bias: cfg.qkvBias });
  const q = splitHeads(proj("q_proj", heads * headDim), kvHeads, heads / kvHeads, headDim, rope);
  const k = splitHeads(proj("k_proj", kvHeads * headDim), kvHeads, 0, headDim, rope);
  const v = splitHeads(proj("v_proj", kvHeads * headDim), kvHeads, 0, headDim);
  const kv = withPast(past, k, v);
  const a = attention(q, kv, bias, 1 / Math.sqrt(headDim));
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

/**
 * Pieces shared by the decoder-only families (llama.ts, gpt2.ts): the forward pass's inputs and
 * outputs, position ids, the causal/padding mask, rotary tables, and the attention core with an
 * optional key/value cache.
 *
 * Shapes use the symbols "batch", "seq" (new tokens), "past" (cached tokens); keys span
 * "past+seq" (or "seq" without a cache). Query i sits at absolute index past + i and sees keys
 * 0..past+i whose attention-mask entry is 1.
 */

import { checkpoint } from "../graph/checkpoint.js";
import type { Graph, Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import { addDims, type Dim, dimEq, mulDims } from "../graph/shape.js";
import { GraphBuildError } from "../util/errors.js";
import type { ModelConfig } from "./config.js";
import { ropeInverseFrequencies } from "./config.js";
import type { ModuleContext } from "./module.js";
import { blockedAttention } from "./query-blocks.js";

export interface KeyValue {
  key: Value;
  value: Value;
}

export interface ForwardInputs {
  /** int64 ["batch", "seq"] */
  ids: Value;
  /** int64 ["batch", "seq"]; default: from the attention mask, else past + 0..seq-1. */
  positions?: Value;
  /** int64 ["batch", keys], 1 = real token, 0 = padding; keys = "past+seq" with a cache, else "seq". */
  attentionMask?: Value;
  /** Per layer, float32 ["batch", kvHeads, "past", headDim] (keys after RoPE, as in HF). */
  past?: KeyValue[];
}

export interface ForwardOutputs {
  /** float32 ["batch", "seq", vocab] */
  logits: Value;
  /** The final normalised hidden state ["batch", "seq", hidden], for a loss chunked over tokens. */
  hidden: Value;
  /** Per layer ["batch", kvHeads, "past+seq", headDim] when `past` was given. */
  present: KeyValue[] | null;
}

/** How a forward pass is built, beyond its inputs. */
export interface BuildOptions {
  /**
   * Recompute each decoder layer's activations in the backward pass instead of keeping them
   * (graph/checkpoint.ts): training only, less memory for about one more forward pass of time.
   */
  checkpointLayers?: boolean;
  /**
   * Causal attention in this many query blocks (query-blocks.ts; training only, default 1):
   * `queryBlocksFor` picks it from the longest sequence.
   */
  queryBlocks?: number;
}

/**
 * The query blocks `train` uses for sequences up to `maxLength` tokens, measured (bench/RESULTS.md
 * "Query blocks"): 4 blocks: -4% step time at GPT-2 4×512, -8% at 1×1024; at SmolLM 1×2048, 4 blocks
 * -15% time and -38% peak memory, 8 blocks -24% and -37%. At 256 positions the gain was 0–5% for
 * +4% memory and a longer session build, so shorter runs keep one block.
 */
export function queryBlocksFor(maxLength: number): number {
  return maxLength >= 2048 ? 8 : maxLength >= 512 ? 4 : 1;
}

/**
 * One decoder layer x -> layer(x), checkpointed when `opts` asks. A cached forward pass (inference)
 * is refused: its present keys/values would be activations kept outside the layer.
 */
export function decoderLayer(
  opts: BuildOptions,
  inputs: ForwardInputs,
  index: number,
  x: Value,
  layer: (x: Value) => Value,
): Value {
  if (!opts.checkpointLayers) return layer(x);
  if (inputs.past)
    throw new GraphBuildError("layer checkpointing is for training; a cached forward pass has none");
  return checkpoint(`layer ${index}`, x, layer);
}

/** Which optional inputs a forward graph declares. */
export interface ForwardSignature {
  positions?: boolean;
  attentionMask?: boolean;
  kvCache?: boolean;
}

/** Input/output names, as in Hugging Face Optimum's ONNX exports. */
export const IO_NAMES = {
  ids: "input_ids",
  positions: "position_ids",
  attentionMask: "attention_mask",
  pastKey: (i: number) => `past_key_values.${i}.key`,
  pastValue: (i: number) => `past_key_values.${i}.value`,
  presentKey: (i: number) => `present.${i}.key`,
  presentValue: (i: number) => `present.${i}.value`,
  logits: "logits",
};

/** Declares the graph inputs of a forward pass. */
export function declareInputs(g: Graph, cfg: ModelConfig, sig: ForwardSignature = {}): ForwardInputs {
  const ids = g.input(IO_NAMES.ids, "int64", ["batch", "seq"]);
  const inputs: ForwardInputs = { ids };
  if (sig.kvCache) {
    inputs.past = [];
    const shape = ["batch", cfg.kvHeads, "past", cfg.headDim];
    for (let i = 0; i < cfg.layers; i++) {
      const key = g.input(IO_NAMES.pastKey(i), "float32", shape);
      const value = g.input(IO_NAMES.pastValue(i), "float32", shape);
      inputs.past.push({ key, value });
    }
  }
  if (sig.positions) inputs.positions = g.input(IO_NAMES.positions, "int64", ["batch", "seq"]);
  if (sig.attentionMask)
    inputs.attentionMask = g.input(IO_NAMES.attentionMask, "int64", ["batch", keysDim(inputs)]);
  return inputs;
}

/** Marks logits (and the present cache) as graph outputs under IO_NAMES. */
export function declareOutputs(g: Graph, out: ForwardOutputs): void {
  g.output(out.logits, IO_NAMES.logits);
  out.present?.forEach((kv, i) => {
    g.output(kv.key, IO_NAMES.presentKey(i));
    g.output(kv.value, IO_NAMES.presentValue(i));
  });
}

/** The symbolic length of the keys: "past+seq" with a cache, else "seq". */
export function keysDim(inputs: ForwardInputs): Dim {
  return inputs.past ? addDims("past", "seq") : "seq";
}

/** Runtime number of cached tokens, int64 [1]. */
function pastLength(g: Graph): Value {
  return o.shapeTensor(g, ["past"]);
}

/**
 * Position ids [batch|1, seq]. With an attention mask they follow HF generation: cumsum(mask) - 1,
 * padding slots set to 1, so left-padded rows start at 0 at their first real token.
 */
export function positionIds(inputs: ForwardInputs): Value {
  if (inputs.positions) return inputs.positions;
  const g = inputs.ids.graph;
  const mask = inputs.attentionMask;
  if (!mask) {
    let pos = o.range(g, "seq");
    if (inputs.past) pos = o.add(pos, pastLength(g));
    return o.unsqueeze(pos, [0]);
  }
  const cum = g.addNode("CumSum", [mask, o.scalar(g, 1, "int64")], {}, [
    { dtype: "int64", shape: mask.shape },
  ]).outputs[0]!;
  let pos = o.where(o.equal(mask, 0), 1, o.sub(cum, 1));
  if (inputs.past) {
    // Only the new tokens' columns: [past, past+seq).
    const starts = pastLength(g);
    const ends = o.i64(g, [o.SLICE_END]);
    const shape = [mask.dim(0), "seq"];
    pos = g.addNode("Slice", [pos, starts, ends, o.i64(g, [1])], {}, [{ dtype: "int64", shape }]).outputs[0]!;
  }
  return pos;
}

/**
 * Additive attention bias [batch|1, 1, groups·seq, keys]: 0 where a query may attend, -1e9 where not.
 * Rows are laid out group-major to match the grouped-query layout of `attention`. A fully masked
 * row (a padding query) gets -1e9 everywhere, i.e. a uniform softmax rather than NaN; HF's
 * finfo.min would overflow to -inf when added to a score.
 */
export function attentionBias(inputs: ForwardInputs, groups: number): Value {
  const g = inputs.ids.graph;
  const keys = keysDim(inputs);
  let q = o.range(g, mulDims(groups, "seq"));
  if (groups > 1) q = binaryInt(g, "Mod", q, o.shapeTensor(g, ["seq"]));
  let k: Value;
  if (inputs.past) {
    q = o.add(q, pastLength(g));
    const total = o.squeeze(o.add(pastLength(g), o.shapeTensor(g, ["seq"])), [0]);
    const zero = o.scalar(g, 0, "int64");
    const one = o.scalar(g, 1, "int64");
    k = g.addNode("Range", [zero, total, one], {}, [{ dtype: "int64", shape: [keys] }]).outputs[0]!;
  } else {
    k = o.range(g, "seq");
  }
  let allowed = o.not(o.greater(o.unsqueeze(k, [0]), o.unsqueeze(q, [1]))); // key index <= query index
  if (inputs.attentionMask) {
    const real = o.unsqueeze(o.cast(inputs.attentionMask, "bool"), [1, 2]); // [batch, 1, 1, keys]
    allowed = o.and(o.unsqueeze(allowed, [0, 1]), real);
  } else {
    allowed = o.unsqueeze(allowed, [0, 1]);
  }
  return o.where(allowed, o.scalar(g, 0), -1e9);
}

function binaryInt(g: Graph, op: string, a: Value, b: Value): Value {
  return g.addNode(op, [a, b], {}, [{ dtype: a.dtype, shape: a.shape }]).outputs[0]!;
}

/** Rotary cos and sin [batch|1, seq, headDim] for the positions (HF rotate-half layout). */
export function ropeTables(cfg: ModelConfig, positions: Value): { cos: Value; sin: Value } {
  // Computed in the graph from position × inverse frequency, in float32 as HF does, rather than
  // gathered from a [maxPositions, headDim] table: Llama 3.1's 131072 positions would make 64 MB
  // tables per model for a few thousand cos/sin evaluations per forward.
  const g = positions.graph;
  const inv = ropeInverseFrequencies(cfg);
  const invFreq = o.constant(g, "float32", [inv.length], inv);
  const angles = o.mul(o.unsqueeze(o.cast(positions, "float32"), [-1]), invFreq);
  const full = o.concat([angles, angles], -1);
  const unary = (op: string) =>
    g.addNode(op, [full], {}, [{ dtype: "float32", shape: full.shape }]).outputs[0]!;
  return { cos: unary("Cos"), sin: unary("Sin") };
}

/**
 * Split heads: [batch, seq, heads·d] -> [batch, kvHeads, groups, seq, d] for queries (head h =
 * kvHead·groups + r, HF's repeat_kv order) or [batch, kvHeads, seq, d] for keys/values (groups 0).
 * RoPE is applied before the transpose when tables are given.
 */
export function splitHeads(
  x: Value,
  kvHeads: number,
  groups: number,
  headDim: number,
  rope?: { cos: Value; sin: Value },
): Value {
  const [b, t] = [x.dim(0), x.dim(1)];
  if (groups === 0) {
    let h = o.reshape(x, [b, t, kvHeads, headDim]);
    if (rope) h = nn.rope(h, o.unsqueeze(rope.cos, [2]), o.unsqueeze(rope.sin, [2]));
    return o.transpose(h, [0, 2, 1, 3]);
  }
  let h = o.reshape(x, [b, t, kvHeads, groups, headDim]);
  if (rope) h = nn.rope(h, o.unsqueeze(rope.cos, [2, 3]), o.unsqueeze(rope.sin, [2, 3]));
  return o.transpose(h, [0, 2, 3, 1, 4]);
}

/** Appends the new keys/values to the cache along the sequence axis. */
export function withPast(past: KeyValue | undefined, key: Value, value: Value): KeyValue {
  if (!past) return { key, value };
  return { key: o.concat([past.key, key], 2), value: o.concat([past.value, value], 2) };
}

/**
 * Scaled dot-product attention with grouped queries. q [batch, kvH, groups, seq, d] is viewed as
 * [batch, kvH, groups·seq, d] so each KV head serves its query group in one matrix product: no
 * copy of K/V per query head (HF's repeat_kv), and larger GEMMs. Returns [batch, seq, heads·d].
 * `blocks` > 1 (training, no cache): causal attention in that many query blocks (query-blocks.ts).
 */
export function attention(q: Value, kv: KeyValue, bias: Value, scale: number, blocks = 1): Value {
  const [b, kvH, groups, t, d] = q.shape as [Dim, number, number, Dim, number];
  let ctx: Value;
  // Only where the keys are the queries' own positions (no cache): the blocks assume causality from 0.
  if (blocks > 1 && dimEq(kv.key.shape[2]!, t)) {
    ctx = blockedAttention(q, kv.key, kv.value, bias, scale, blocks);
  } else {
    const qf = o.reshape(q, [b, kvH, mulDims(groups, t), d]);
    ctx = o.reshape(attentionCore(qf, kv.key, kv.value, bias, scale), [b, kvH, groups, t, d]);
  }
  return o.reshape(o.transpose(ctx, [0, 3, 1, 2, 4]), [b, t, kvH * groups * d]);
}

/**
 * O = softmax(scale·Q·Kᵀ + bias)·V over [batch, heads, rows, d], with a backward pass that recomputes
 * the probabilities P instead of keeping them: the [batch, heads, rows, keys] tensors are the largest
 * activations of a training step (GPT-2-small at 8×512: 100 MB per layer), and recomputing them costs
 * one Q·Kᵀ product per layer. With dO the incoming gradient,
 *
 *   dV = Pᵀ·dO    dS = P ⊙ (dO·Vᵀ − rowsum(dO ⊙ O))    dQ = scale·dS·K    dK = scale·dSᵀ·Q
 *
 * (rowsum(dO ⊙ O) = rowsum(P ⊙ dO·Vᵀ), read from the [rows, d] output rather than from P).
 */
export function attentionCore(q: Value, key: Value, value: Value, bias: Value, scale: number): Value {
  const probsOf = (q: Value, key: Value, bias: Value) =>
    o.softmax(o.add(o.product(q, key, false, true, scale), bias), -1);
  const [out] = q.graph.region({
    name: "attention",
    inputs: [q, key, value],
    forward: () => {
      const out = o.product(probsOf(q, key, bias), value, false, false);
      return { outputs: [out], saved: [q, key, value, bias, out] };
    },
    backward: ([q, key, value, bias, out], [dOut], needs) => {
      // The gradient flowing in is built first, and the recomputation after it, so that onnxruntime's
      // depth-first ordering runs the recomputation when the backward pass reaches this layer.
      const dProbs = o.product(dOut, value, false, true);
      const rowDot = o.reduceSum(o.mul(dOut, out), [-1], true);
      const probs = probsOf(q, key, bias);
      const dScores = o.mul(o.sub(dProbs, rowDot), probs);
      return [
        needs[0] ? o.product(dScores, key, false, false, scale) : null,
        needs[1] ? o.product(dScores, q, true, false, scale) : null,
        needs[2] ? o.product(probs, dOut, true, false) : null,
      ];
    },
  });
  return out;
}

/** The output head (lm_head, tied or not: the context resolves the weight): logits [.., vocab]. */
export function outputHead(ctx: ModuleContext, cfg: ModelConfig, hidden: Value): Value {
  return ctx.linear(hidden, {
    path: "lm_head",
    inFeatures: cfg.hidden,
    outFeatures: cfg.vocabSize,
    bias: false,
  });
}
